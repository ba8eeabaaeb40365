"""Flux reconcile, suspend and resume against the Kubernetes emulator."""

from __future__ import annotations

import re

import pytest

from adapters.errors import AdapterError, Cancelled, NotFound, Refused, TimedOut
from adapters.kubernetes import flux
from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from adapters.progress import Hooks, Progress
from lab.fakes.flux import StandaloneFlux
from lab.fakes.kube import (
    Reactor,
    StandaloneKube,
    add_helmrelease,
    add_kustomization,
    add_source,
)

FAST = {"poll": 0.05, "timeout": 5.0}


def recorder() -> tuple[Hooks, list[Progress]]:
    seen: list[Progress] = []
    return Hooks(report=seen.append), seen


def test_list_and_get_kustomizations(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_kustomization(kube_emulator, "infra")
    add_kustomization(kube_emulator, "apps", suspended=True, ready=False, message="boom")
    add_kustomization(kube_emulator, "web", "team-a", ready=None)

    everything = flux.list_kustomizations(kube)
    assert [(k.namespace, k.name) for k in everything] == [
        ("flux-system", "apps"), ("flux-system", "infra"), ("team-a", "web")]
    assert [k.name for k in flux.list_kustomizations(kube, "team-a")] == ["web"]

    apps = flux.get_kustomization(kube, "apps")
    assert apps.suspended and apps.ready is False and apps.message == "boom"
    assert (apps.source_kind, apps.source_name, apps.source_namespace) == (
        "GitRepository", "flux-system", "flux-system")
    assert flux.get_kustomization(kube, "web", "team-a").ready is None
    with pytest.raises(NotFound, match="Kustomization flux-system/nope does not exist"):
        flux.get_kustomization(kube, "nope")


def test_reconcile_waits_for_the_token_and_ready(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_kustomization(kube_emulator, "apps")
    hooks, seen = recorder()
    with StandaloneFlux(kube_emulator) as controller:
        result = flux.reconcile_kustomization(kube, "apps", hooks=hooks, **FAST)

    stored = kube_emulator.get(R.KUSTOMIZATIONS, "apps", "flux-system")
    token = stored["metadata"]["annotations"][flux.REQUESTED_AT]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", token)
    assert result.last_handled == token and result.ready is True
    assert controller.handled == [("Kustomization", "flux-system", "apps")]
    assert seen[0].message == "Asked Flux to reconcile Kustomization flux-system/apps"
    assert seen[-1].status == "ready"


def test_reconcile_with_source_reconciles_the_source_first(
    kube_emulator: StandaloneKube, kube: Kube
) -> None:
    add_source(kube_emulator, "GitRepository", "repo", "git")
    add_kustomization(kube_emulator, "apps", source=("GitRepository", "repo"),
                      source_namespace="git")
    with StandaloneFlux(kube_emulator) as controller:
        flux.reconcile_kustomization(kube, "apps", with_source=True, **FAST)
    assert controller.handled == [
        ("GitRepository", "git", "repo"), ("Kustomization", "flux-system", "apps")]


def test_reconcile_failure_carries_ready_message(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_kustomization(kube_emulator, "apps")
    with StandaloneFlux(kube_emulator) as controller:
        controller.outcomes[("Kustomization", "flux-system", "apps")] = (
            False, "BuildFailed", "kustomization path not found: ./apps")
        with pytest.raises(AdapterError, match="apps failed to reconcile: kustomization path not"):
            flux.reconcile_kustomization(kube, "apps", **FAST)


def test_stalled_is_a_failure(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_kustomization(kube_emulator, "apps")

    def stall() -> None:
        obj = kube_emulator.get(R.KUSTOMIZATIONS, "apps", "flux-system")
        token = (obj["metadata"].get("annotations") or {}).get(flux.REQUESTED_AT)
        if token and obj["status"].get("lastHandledReconcileAt") != token:
            kube_emulator.patch(R.KUSTOMIZATIONS, "apps", {"status": {
                "lastHandledReconcileAt": token,
                "conditions": [
                    {"type": "Ready", "status": "Unknown", "reason": "Progressing",
                     "message": "dependency not ready"},
                    {"type": "Stalled", "status": "True", "reason": "InvalidPath",
                     "message": "path invalid"}]}}, "flux-system")

    with Reactor(stall), pytest.raises(AdapterError, match="dependency not ready"):
        flux.reconcile_kustomization(kube, "apps", **FAST)


def test_suspended_is_refused_without_patching(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_kustomization(kube_emulator, "apps", suspended=True)
    with pytest.raises(Refused, match="flux-system/apps is suspended"):
        flux.reconcile_kustomization(kube, "apps", **FAST)
    assert kube_emulator.requests("patch") == []


def test_suspended_source_is_refused(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_source(kube_emulator, "GitRepository", "flux-system", suspended=True)
    add_kustomization(kube_emulator, "apps")
    with pytest.raises(Refused, match="GitRepository flux-system/flux-system is suspended"):
        flux.reconcile_kustomization(kube, "apps", with_source=True, **FAST)


def test_timeout_names_the_object_when_flux_is_silent(
    kube_emulator: StandaloneKube, kube: Kube
) -> None:
    add_kustomization(kube_emulator, "apps")
    with pytest.raises(TimedOut, match=r"flux-system/apps did not finish reconciling within 0s; "
                                       r"Flux has not handled the request yet"):
        flux.reconcile_kustomization(kube, "apps", poll=0.05, timeout=0.3)


def test_timeout_names_the_last_ready_message(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_kustomization(kube_emulator, "apps")

    def handle_but_keep_reconciling() -> None:
        obj = kube_emulator.get(R.KUSTOMIZATIONS, "apps", "flux-system")
        token = (obj["metadata"].get("annotations") or {}).get(flux.REQUESTED_AT)
        if token and obj["status"].get("lastHandledReconcileAt") != token:
            kube_emulator.patch(R.KUSTOMIZATIONS, "apps", {"status": {
                "lastHandledReconcileAt": token,
                "conditions": [
                    {"type": "Ready", "status": "Unknown", "reason": "Progressing",
                     "message": "still applying"},
                    {"type": "Reconciling", "status": "True", "reason": "Progressing"}]}},
                "flux-system")

    with Reactor(handle_but_keep_reconciling), pytest.raises(
        TimedOut, match="apps did not finish .* last Ready=Unknown Progressing: still applying"
    ):
        flux.reconcile_kustomization(kube, "apps", poll=0.05, timeout=0.5)


def test_cancel_stops_the_wait(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_kustomization(kube_emulator, "apps")
    polls: list[int] = []

    def cancelled() -> bool:
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(Cancelled, match="Flux finishes it on its own"):
        flux.reconcile_kustomization(kube, "apps", poll=0.05, timeout=30,
                                     hooks=Hooks(cancelled=cancelled))


def test_helmrelease_with_chart_template_source(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_source(kube_emulator, "HelmRepository", "podinfo")
    add_source(kube_emulator, "HelmChart", "flux-system-web")
    add_helmrelease(kube_emulator, "web", source=("HelmRepository", "podinfo"))
    with StandaloneFlux(kube_emulator) as controller:
        result = flux.reconcile_helmrelease(kube, "web", with_source=True, **FAST)
    assert controller.handled == [
        ("HelmRepository", "flux-system", "podinfo"),
        ("HelmChart", "flux-system", "flux-system-web"),
        ("HelmRelease", "flux-system", "web"),
    ]
    assert result.ready is True and result.chart == "podinfo" and result.revision == "6.5.0"


def test_helmrelease_chartref_and_oci_helmrepository(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_source(kube_emulator, "OCIRepository", "podinfo-oci")
    add_helmrelease(kube_emulator, "web", chart_ref=("OCIRepository", "podinfo-oci"))
    add_source(kube_emulator, "HelmRepository", "oci-repo", spec={"type": "oci"})
    add_source(kube_emulator, "HelmChart", "flux-system-api")
    add_helmrelease(kube_emulator, "api", source=("HelmRepository", "oci-repo"))
    hooks, seen = recorder()
    with StandaloneFlux(kube_emulator) as controller:
        flux.reconcile_helmrelease(kube, "web", with_source=True, **FAST)
        flux.reconcile_helmrelease(kube, "api", with_source=True, hooks=hooks, **FAST)
    assert controller.handled == [
        ("OCIRepository", "flux-system", "podinfo-oci"),
        ("HelmRelease", "flux-system", "web"),
        ("HelmChart", "flux-system", "flux-system-api"),
        ("HelmRelease", "flux-system", "api"),
    ]
    assert any(p.status == "skipped" for p in seen)
    assert [h.name for h in flux.list_helmreleases(kube)] == ["api", "web"]


def test_missing_source_is_named(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_kustomization(kube_emulator, "apps", source=("Bucket", "gone"))
    with pytest.raises(NotFound, match="refers to Bucket flux-system/gone"):
        flux.reconcile_kustomization(kube, "apps", with_source=True, **FAST)


def test_suspend_and_resume(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_kustomization(kube_emulator, "apps")
    add_helmrelease(kube_emulator, "web")
    assert flux.suspend(kube, "Kustomization", "apps").suspended is True
    assert flux.suspend(kube, "hr", "web").suspended is True
    with pytest.raises(Refused):
        flux.reconcile_kustomization(kube, "apps", **FAST)
    with StandaloneFlux(kube_emulator) as controller:
        resumed = flux.resume(kube, "Kustomization", "apps", timeout=5, poll=0.05)
        web = flux.resume(kube, "HelmRelease", "web", timeout=5, poll=0.05)
    assert resumed.suspended is False and resumed.ready is True and resumed.last_handled
    assert web.suspended is False and web.ready is True
    assert controller.handled == [
        ("Kustomization", "flux-system", "apps"), ("HelmRelease", "flux-system", "web")]
    with pytest.raises(ValueError):
        flux.suspend(kube, "GitRepository", "x")


def test_resume_times_out_naming_the_failure(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_kustomization(kube_emulator, "apps", suspended=True)
    with pytest.raises(TimedOut, match="Kustomization flux-system/apps did not finish"):
        flux.resume(kube, "ks", "apps", timeout=0.3, poll=0.05)
    assert flux.get_kustomization(kube, "apps").suspended is False


def test_rfc3339nano() -> None:
    assert flux.rfc3339nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert flux.rfc3339nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert flux.rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_forced_helmrelease_upgrade_sends_force_at_equal_to_the_token(
        kube_emulator: StandaloneKube, kube: Kube) -> None:
    """helm-controller handles forceAt only when it equals requestedAt (api/v2/annotations.go)."""
    add_helmrelease(kube_emulator, "web")
    with StandaloneFlux(kube_emulator) as controller:
        flux.reconcile_helmrelease(kube, "web", force=True, **FAST)
        flux.reconcile_helmrelease(kube, "web", **FAST)
    annotations = kube_emulator.get(R.HELMRELEASES, "web", "flux-system")["metadata"]["annotations"]
    first_force = annotations[flux.FORCE_AT]
    assert controller.forced == [("HelmRelease", "flux-system", "web")]  # the second: no force
    assert annotations[flux.REQUESTED_AT] != first_force  # a new token, forceAt left as it was


def test_a_forced_upgrade_waits_for_last_handled_force_at(
        kube_emulator: StandaloneKube, kube: Kube) -> None:
    """A controller that handled the reconcile but not the force (an older helm-controller) is
    not taken for a done upgrade."""
    add_helmrelease(kube_emulator, "web")

    def handle_reconcile_only() -> None:
        obj = kube_emulator.get(R.HELMRELEASES, "web", "flux-system")
        token = (obj["metadata"].get("annotations") or {}).get(flux.REQUESTED_AT)
        if token and obj["status"].get("lastHandledReconcileAt") != token:
            kube_emulator.patch(R.HELMRELEASES, "web", {"status": {
                "lastHandledReconcileAt": token}}, "flux-system")

    with Reactor(handle_reconcile_only), pytest.raises(TimedOut, match="has not handled the forced upgrade"):
        flux.reconcile_helmrelease(kube, "web", force=True, poll=0.05, timeout=0.5)


def test_helmreleases_a_kustomization_applied_and_where_they_install(
        kube_emulator: StandaloneKube, kube: Kube) -> None:
    labels = {"kustomize.toolkit.fluxcd.io/name": "apps",
              "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}
    for name, spec in (("web", {}), ("api", {"targetNamespace": "prod"}),
                       ("db", {"releaseName": "pg", "targetNamespace": "data"})):
        add_helmrelease(kube_emulator, name, "team")
        kube_emulator.patch(R.HELMRELEASES, name, {"metadata": {"labels": labels},
                                                   "spec": spec}, "team")
    add_helmrelease(kube_emulator, "other", "team")
    found = {hr.name: hr for hr in flux.applied_by(kube, "apps")}
    assert sorted(found) == ["api", "db", "web"]
    assert (found["web"].installs_into, found["web"].release_name) == ("team", "web")
    assert (found["api"].installs_into, found["api"].release_name) == ("prod", "prod-api")
    assert (found["db"].installs_into, found["db"].release_name) == ("data", "pg")

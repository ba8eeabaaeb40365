"""/dr reconcile and /dr status end to end: core, real worker, official client, kmock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.kubernetes import resources as R
from lab.fakes.flux import StandaloneFlux
from lab.fakes.kube import (
    StandaloneKube,
    add_kustomization,
    add_node,
    add_source,
    write_kubeconfig,
)
from tests.bot.harness import Harness


@pytest.fixture
def lab(redis_url: str, tmp_path: Path, kube_emulator: StandaloneKube) -> Iterator[Harness]:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("flux: {timeout_seconds: 3, poll_seconds: 0.1}\n")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kube_emulator.url)
    harness = Harness(redis_url, tmp_path, DRBOT_KUBECONFIG=kubeconfig,
                      DRBOT_INVENTORY=inventory)
    harness.start_worker()
    harness.start_relay()
    add_kustomization(kube_emulator, "flux-system")
    add_kustomization(kube_emulator, "apps")
    add_source(kube_emulator, "GitRepository", "flux-system")
    yield harness
    harness.close()


def test_reconcile_waits_for_flux_to_handle_the_request(lab: Harness,
                                                        kube_emulator: StandaloneKube) -> None:
    with StandaloneFlux(kube_emulator) as flux:
        job_id = lab.say("/dr reconcile apps --with-source").job_id
        job = lab.wait_status(job_id, "succeeded")
    lab.wait_settled(job_id)
    assert flux.handled[:2] == [("GitRepository", "flux-system", "flux-system"),
                                ("Kustomization", "flux-system", "apps")]
    token = kube_emulator.get(R.KUSTOMIZATIONS, "apps", "flux-system")["metadata"][
        "annotations"]["reconcile.fluxcd.io/requestedAt"]
    status = kube_emulator.get(R.KUSTOMIZATIONS, "apps", "flux-system")["status"]
    assert status["lastHandledReconcileAt"] == token
    assert "Kustomization flux-system/apps is Ready at main@sha1:0123abcd" in \
        lab.frontend.replies(job_id)[-1]
    assert job.steps[0].status == "done"


def test_reconcile_failure_shows_readys_message(lab: Harness, kube_emulator: StandaloneKube) -> None:
    with StandaloneFlux(kube_emulator) as flux:
        flux.outcomes[("Kustomization", "flux-system", "apps")] = (
            False, "BuildFailed", "kustomize build failed: accumulating resources")
        job_id = lab.say("/dr reconcile apps").job_id
        lab.wait_status(job_id, "failed")
    text = lab.wait_reply(job_id, "failed at step 'reconcile'")
    assert "kustomize build failed: accumulating resources" in text


def test_a_suspended_kustomization_is_refused(lab: Harness, kube_emulator: StandaloneKube) -> None:
    add_kustomization(kube_emulator, "paused", suspended=True)
    job_id = lab.say("/dr reconcile paused").job_id
    lab.wait_status(job_id, "refused")
    text = lab.wait_reply(job_id, "refused")
    assert "suspended" in text
    annotations = kube_emulator.get(R.KUSTOMIZATIONS, "paused", "flux-system")["metadata"].get(
        "annotations") or {}
    assert "reconcile.fluxcd.io/requestedAt" not in annotations


def test_reconcile_timeout_is_clear(lab: Harness) -> None:
    job_id = lab.say("/dr reconcile apps").job_id  # no controller: Flux never answers
    lab.wait_status(job_id, "failed")
    text = lab.wait_reply(job_id, "failed at step 'reconcile'")
    assert "apps" in text and "3" in text and "/dr retry" in text


def test_an_unknown_kustomization_is_refused(lab: Harness) -> None:
    job_id = lab.say("/dr reconcile nope").job_id
    lab.wait_status(job_id, "refused")
    assert "nope" in lab.wait_reply(job_id, "refused")


def test_status_lists_nodes_and_kustomizations(lab: Harness, kube_emulator: StandaloneKube) -> None:
    add_node(kube_emulator, "k3s-server-1")
    add_node(kube_emulator, "k3s-agent-1", ready=False)
    add_kustomization(kube_emulator, "broken", ready=False, message="health check failed")
    job_id = lab.say("/dr status", who="dave").job_id
    lab.wait_status(job_id, "succeeded")
    text = lab.frontend.replies(job_id)[-1] if lab.wait_settled(job_id) is None else ""
    assert "k3s-server-1" in text and "k3s-agent-1" in text and "NOT READY" in text
    assert "flux-system/broken" in text and "health check failed" in text


def test_ready_says_plainly_when_flux_will_not_recreate_a_helm_object(
        lab: Harness, kube_emulator: StandaloneKube) -> None:
    """helm-controller recreates a deleted object of an in-sync release only with drift
    detection enabled (off by default): Ready must not read as 'it is back'."""
    from lab.fakes.kube import add_helmrelease

    labels = {"kustomize.toolkit.fluxcd.io/name": "apps",
              "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}
    for name, mode in (("podinfo", None), ("watched", "enabled")):
        add_helmrelease(kube_emulator, name, "web")
        spec = {"driftDetection": {"mode": mode}} if mode else {}
        kube_emulator.patch(R.HELMRELEASES, name, {"metadata": {"labels": labels},
                                                   "spec": spec}, "web")
    with StandaloneFlux(kube_emulator):
        job_id = lab.say("/dr reconcile apps").job_id
        lab.wait_status(job_id, "succeeded")
    lab.wait_settled(job_id)
    final = lab.frontend.replies(job_id)[-1]
    assert "Flux will not recreate a deleted object of HelmRelease(s) web/podinfo" in final
    assert "`flux reconcile helmrelease podinfo -n web --force`" in final
    assert "watched" not in final

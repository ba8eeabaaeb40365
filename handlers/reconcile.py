"""/dr reconcile [kustomization] [--with-source] [--object kind/ns/name]: scenario 1, a deleted
deployment comes back.

Flux re-applies the Kustomization from Git. Refused while the Kustomization is suspended (someone
suspended it on purpose); waits until Flux has handled this very request and reports Ready.

Ready does not mean a deleted object is back when a HelmRelease installed it: helm-controller
leaves an in-sync release alone unless its drift detection is enabled (off by default;
fluxcd/helm-controller internal/reconcile/atomic_release.go). So with ``--object`` drbot checks
the object the operator expects back; when it is still missing it reconciles the HelmRelease of
the Kustomization that installs into the object's namespace: a forced upgrade
(``reconcile.fluxcd.io/forceAt``, helm-controller api/v2/annotations.go) when drift detection is
not enabled, a plain reconcile when it is; then it checks again. Without ``--object`` the result
names every HelmRelease whose deleted objects Flux would not recreate, with the command to.
"""

from __future__ import annotations

import re
from typing import Any

from bot.config.inventory import Inventory
from bot.errors import CommandError
from bot.grammar import QUALIFIED, Param, ValueKind
from bot.records.locks import LockKey, shared
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef

# The kinds drbot may read (its ClusterRole): what scenario 1 brings back.
OBJECT = ValueKind("kind/namespace/name", re.compile(
    r"(deployment|statefulset)/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/[a-z0-9]([a-z0-9.-]{0,251}"
    r"[a-z0-9])?"), "deployment/apps/podinfo")
KINDS = {"deployment": "Deployment", "statefulset": "StatefulSet"}
DRIFT_ENABLED = "enabled"  # helm-controller api/v2 DriftDetectionEnabled


def split(name: str) -> tuple[str, str]:
    namespace, _, short = name.rpartition("/")
    return namespace or "flux-system", short


def locks(args: dict[str, Any], inventory: Inventory) -> list[LockKey]:
    return [shared("cluster"), shared(f"kustomization:{args['kustomization']}")]


def helm_without_drift(step: StepContext, namespace: str, name: str) -> list[str]:
    """HelmReleases this Kustomization applied whose drift detection is not enabled."""
    from adapters.kubernetes import flux

    return [f"{hr.namespace}/{hr.name}" for hr in flux.applied_by(step.services.kube, name,
                                                                  namespace)
            if hr.drift_detection != DRIFT_ENABLED]


def force_command(ref: str) -> str:
    ns, _, name = ref.partition("/")
    return f"`flux reconcile helmrelease {name} -n {ns} --force`"


def exists(step: StepContext, kind: str, ns: str, name: str) -> bool:
    from adapters.errors import NotFound
    from adapters.kubernetes import workloads

    try:
        workloads.get_workload(step.services.kube, KINDS[kind], ns, name)
    except NotFound:
        return False
    return True


def owning_release(step: StepContext, ks: tuple[str, str], kind: str, ns: str, name: str) -> Any:
    """The HelmRelease of Kustomization ``ks`` that installs object ``ns/name``.

    A deleted object's own labels (``helm.toolkit.fluxcd.io/name``, ``meta.helm.sh/release-name``)
    are gone with it, and the release's manifest sits in a Secret drbot may not read; so the
    release is the one of this Kustomization that installs into ``ns``, narrowed, when several
    do, by Helm's naming of a chart's objects (``<release>`` or ``<release>-<chart>``).
    """
    from adapters.kubernetes import flux

    what = f"{kind} {ns}/{name}"
    found = [hr for hr in flux.applied_by(step.services.kube, ks[1], ks[0])
             if hr.installs_into == ns]
    if len(found) > 1:
        found = [hr for hr in found
                 if name == hr.release_name or name.startswith(hr.release_name + "-")] or found
    if not found:
        raise CommandError(f"{what} is still missing although Kustomization {ks[0]}/{ks[1]} is "
                           f"Ready, and no HelmRelease of it installs into {ns}: check that Git "
                           "still holds it, or name the Kustomization that applies it")
    if len(found) > 1:
        refs = [f"{hr.namespace}/{hr.name}" for hr in found]
        raise CommandError(f"{what} is still missing and Flux will not recreate it; HelmReleases "
                           f"{', '.join(refs)} all install into {ns}: force the one that renders "
                           "it: " + "; ".join(force_command(r) for r in refs))
    return found[0]


def bring_back(step: StepContext, ks: tuple[str, str], obj: str) -> dict[str, Any]:
    """Check that ``obj`` exists; if not, upgrade (forced unless drift detection is on) the
    HelmRelease that installs it and check again."""
    from adapters.kubernetes import flux

    kind, ns, name = obj.split("/")
    if exists(step, kind, ns, name):
        return {"object": obj, "present": True, "release": "", "forced": False}
    hr = owning_release(step, ks, kind, ns, name)
    ref = f"{hr.namespace}/{hr.name}"
    forced = hr.drift_detection != DRIFT_ENABLED
    step.progress(f"{kind} {ns}/{name} is missing; "
                  + (f"forcing an upgrade of HelmRelease {ref} (its drift detection is off)"
                     if forced else f"reconciling HelmRelease {ref} (drift detection corrects it)"),
                  target=ref, task="reconcile", status="started")
    flux.reconcile_helmrelease(
        step.services.kube, hr.name, hr.namespace, force=forced,
        timeout=step.inventory.flux.timeout_seconds, poll=step.inventory.flux.poll_seconds,
        hooks=step.hooks)
    if not exists(step, kind, ns, name):
        raise CommandError(f"{kind} {ns}/{name} is still missing after "
                           f"{'a forced upgrade' if forced else 'a reconcile'} of HelmRelease "
                           f"{ref}: the chart no longer renders it, or it is not this release's")
    return {"object": obj, "present": False, "release": ref, "forced": forced}


@runbook("reconcile", summary="reconcile a Flux Kustomization from Git",
         params=(Param("kustomization", "[namespace/]name of the Kustomization", kind=QUALIFIED,
                       required=False, default="flux-system", complete="kustomizations",
                       namespace="flux-system"),
                 Param("with-source", "reconcile its Git source first", flag=True, boolean=True,
                       required=False),
                 Param("object", "an object that must be back afterwards (a forced Helm upgrade "
                       "brings back one its HelmRelease installed)", kind=OBJECT, flag=True,
                       required=False)),
         locks=locks, timeout=3600)
def reconcile(ctx: PlanContext) -> Runbook:
    from adapters.kubernetes import flux

    namespace, name = split(str(ctx.args["kustomization"]))
    found = flux.get_kustomization(ctx.services.kube, name, namespace)
    target = f"Kustomization {namespace}/{name}"

    def preflight() -> None:
        if flux.get_kustomization(ctx.services.kube, name, namespace).suspended:
            raise CommandError(f"{target} is suspended (someone paused it on purpose); resume it "
                               f"first with `flux resume kustomization {name} -n {namespace}` "
                               "if it should run again")
    source = f"{found.source_kind} {found.source_namespace or namespace}/{found.source_name}"

    def run(step: StepContext) -> dict[str, Any]:
        result = flux.reconcile_kustomization(
            step.services.kube, name, namespace, with_source=bool(ctx.args.get("with-source")),
            timeout=ctx.inventory.flux.timeout_seconds, poll=ctx.inventory.flux.poll_seconds,
            hooks=step.hooks)
        return {"revision": result.revision, "message": result.message,
                "helm_no_drift": helm_without_drift(step, namespace, name)}

    describe = "annotate reconcile.fluxcd.io/requestedAt and wait for Ready"
    if ctx.args.get("with-source"):
        describe = f"reconcile {source} first, then " + describe
    steps = [StepDef("reconcile", run, target, describe)]
    expected = ctx.args.get("object")
    if isinstance(expected, str):
        steps.append(StepDef(
            "object", lambda step: bring_back(step, (namespace, name), expected), expected,
            "check it exists; if not, upgrade the HelmRelease that installs it (forced unless "
            "its drift detection is enabled) and check again"))

    def summary(results: dict[str, dict[str, Any]]) -> str:
        applied = results.get("reconcile", {})
        text = f"{target} is Ready at {applied.get('revision') or 'its current revision'}"
        back = results.get("object")
        if back:
            how = ("it was there already" if back.get("present") else
                   f"it is back after a {'forced upgrade' if back.get('forced') else 'reconcile'}"
                   f" of HelmRelease {back.get('release')}")
            return text + f"; {back.get('object')}: {how}"
        releases = applied.get("helm_no_drift") or []
        if releases:
            text += (". Flux will not recreate a deleted object of HelmRelease(s) "
                     f"{', '.join(releases)}: their drift detection is off. If one is missing, "
                     "run again with --object kind/namespace/name, or force an upgrade: "
                     + "; ".join(force_command(r) for r in releases))
        return text

    targets = [target] + ([expected] if isinstance(expected, str) else [])
    return Runbook(steps, targets=targets, preflight=preflight, summary=summary)

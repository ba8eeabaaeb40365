"""/dr reconcile [kustomization] [--with-source]: scenario 1, a deleted deployment comes back.

Flux re-applies the Kustomization from Git. Refused while the Kustomization is suspended (someone
suspended it on purpose); waits until Flux has handled this very request and reports Ready.

Ready does not mean a deleted object is back when a HelmRelease installed it: helm-controller
leaves an in-sync release alone unless its drift detection is enabled (off by default), so the
result names every such HelmRelease of the Kustomization and the forced upgrade that would
recreate its objects.
"""

from __future__ import annotations

from typing import Any

from bot.config.inventory import Inventory
from bot.errors import CommandError
from bot.grammar import QUALIFIED, Param
from bot.records.locks import LockKey, shared
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef


def split(name: str) -> tuple[str, str]:
    namespace, _, short = name.rpartition("/")
    return namespace or "flux-system", short


def locks(args: dict[str, Any], inventory: Inventory) -> list[LockKey]:
    return [shared("cluster"), shared(f"kustomization:{args['kustomization']}")]


def helm_without_drift(step: StepContext, namespace: str, name: str) -> list[str]:
    """HelmReleases this Kustomization applied whose drift detection is not enabled."""
    from adapters.kubernetes import flux

    return [f"{hr.namespace}/{hr.name}" for hr in flux.list_helmreleases(step.services.kube)
            if hr.labels.get("kustomize.toolkit.fluxcd.io/name") == name
            and hr.labels.get("kustomize.toolkit.fluxcd.io/namespace", namespace) == namespace
            and hr.drift_detection != "enabled"]


@runbook("reconcile", summary="reconcile a Flux Kustomization from Git",
         params=(Param("kustomization", "[namespace/]name of the Kustomization", kind=QUALIFIED,
                       required=False, default="flux-system", complete="kustomizations",
                       namespace="flux-system"),
                 Param("with-source", "reconcile its Git source first", flag=True, boolean=True,
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

    def summary(results: dict[str, dict[str, Any]]) -> str:
        applied = results.get("reconcile", {})
        text = f"{target} is Ready at {applied.get('revision') or 'its current revision'}"
        releases = applied.get("helm_no_drift") or []
        if releases:
            text += (". Flux will not recreate a deleted object of HelmRelease(s) "
                     f"{', '.join(releases)}: their drift detection is off. If one is missing, "
                     "force an upgrade: " + "; ".join(
                         f"`flux reconcile helmrelease {r.split('/')[1]} -n {r.split('/')[0]} "
                         "--force`" for r in releases))
        return text

    return Runbook([StepDef("reconcile", run, target, describe)], targets=[target],
                   preflight=preflight, summary=summary)

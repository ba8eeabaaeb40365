"""/dr status: the cluster at a glance (Flux Kustomizations and nodes with their Ready state)."""

from __future__ import annotations

from typing import Any

from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef


def ready(value: bool | None) -> str:
    return {True: "Ready", False: "NOT READY", None: "unknown"}[value]


def overview(step: StepContext) -> dict[str, Any]:
    from adapters.kubernetes import flux, nodes

    kube = step.services.kube
    lines = ["Nodes:"]
    for node in nodes.list_nodes(kube):
        flags = " (cordoned)" if node.unschedulable else ""
        lines.append(f"  {node.name:<20} {ready(node.ready)}{flags}")
    for title, objects in (("Flux Kustomizations:", flux.list_kustomizations(kube)),
                           ("Flux HelmReleases:", flux.list_helmreleases(kube))):
        lines.append(title)
        for obj in objects:
            state = "suspended" if obj.suspended else ready(obj.ready)
            why = f": {obj.message}" if obj.ready is False and obj.message else ""
            lines.append(f"  {obj.namespace}/{obj.name:<24} {state}{why}")
    return {"text": "\n".join(lines)}


@runbook("status", summary="nodes and Flux objects with their Ready state",
         mutating=False, timeout=120)
def status(ctx: PlanContext) -> Runbook:
    return Runbook([StepDef("read cluster state", overview)], targets=[],
                   summary=lambda results: results["read cluster state"]["text"])

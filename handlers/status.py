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
    lines.append("Flux Kustomizations:")
    for k in flux.list_kustomizations(kube):
        state = "suspended" if k.suspended else ready(k.ready)
        why = f": {k.message}" if k.ready is False and k.message else ""
        lines.append(f"  {k.namespace}/{k.name:<24} {state}{why}")
    return {"text": "\n".join(lines)}


@runbook("status", summary="nodes and Flux Kustomizations with their Ready state",
         mutating=False, timeout=120)
def status(ctx: PlanContext) -> Runbook:
    return Runbook([StepDef("read cluster state", overview)], targets=[],
                   summary=lambda results: results["read cluster state"]["text"])

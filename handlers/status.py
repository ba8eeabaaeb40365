"""/dr status: the cluster on one screen: nodes, Flux, Longhorn, CNPG, drills in progress and
drbot's running jobs.

Each section is read on its own; one that cannot be read says why and the others still show
(a half-dead cluster is exactly when this command is typed). Running jobs come from drbot's job
store, read through the step's records (the worker's connection and signing key).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from adapters.errors import AdapterError
from bot.control import JobStatus
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef


def ready(value: bool | None) -> str:
    return {True: "Ready", False: "NOT READY", None: "unknown"}[value]


def section(title: str, read: Callable[[], list[str]]) -> list[str]:
    try:
        return [title, *read()]
    except AdapterError as exc:
        return [title, f"  could not read: {str(exc)[:200]}"]


def node_lines(step: StepContext) -> list[str]:
    from adapters.kubernetes import nodes

    lines = []
    for node in nodes.list_nodes(step.services.kube):
        flags = " (cordoned)" if node.unschedulable else ""
        role = "server" if node.etcd else "agent"
        lines.append(f"  {node.name:<20} {ready(node.ready):<10} {role}{flags}")
    return lines or ["  none"]


def flux_lines(step: StepContext) -> list[str]:
    from adapters.kubernetes import flux

    kube = step.services.kube
    kustomizations = flux.list_kustomizations(kube)
    step.records.remember("kustomizations",  # autocomplete
                          [f"{k.namespace}/{k.name}" for k in kustomizations])
    lines = []
    for title, objects in (("Kustomizations", kustomizations),
                           ("HelmReleases", flux.list_helmreleases(kube))):
        bad = [o for o in objects if not o.suspended and o.ready is not True]
        paused = [o for o in objects if o.suspended]
        lines.append(f"  {title}: {len(objects) - len(bad) - len(paused)} Ready, "
                     f"{len(bad)} not Ready, {len(paused)} suspended")
        for obj in objects:
            state = "suspended" if obj.suspended else ready(obj.ready)
            why = f": {obj.message[:160]}" if obj.ready is not True and obj.message \
                and not obj.suspended else ""
            mark = "✗" if obj in bad else " "
            lines.append(f"   {mark} {obj.namespace + '/' + obj.name:<36} {state}{why}")
    return lines


def longhorn_lines(step: StepContext) -> list[str]:
    from adapters.kubernetes import longhorn

    volumes = longhorn.list_volumes(step.services.kube)
    step.records.remember("pvcs", [f"{v.pvc_namespace}/{v.pvc}" for v in volumes if v.pvc])  # autocomplete
    counts: dict[str, int] = {}
    for volume in volumes:
        key = volume.robustness if volume.state == "attached" else "detached"
        counts[key] = counts.get(key, 0) + 1
    order = ("healthy", "degraded", "faulted", "unknown", "detached")
    rest = sorted(set(counts) - set(order))
    lines = [f"  {len(volumes)} volumes: " + ", ".join(
        f"{counts[k]} {k}" for k in [*order, *rest] if k in counts)]
    for volume in volumes:
        if volume.robustness in ("degraded", "faulted"):
            pvc = f" (PVC {volume.pvc_namespace}/{volume.pvc})" if volume.pvc else ""
            lines.append(f"    ✗ {volume.name}{pvc} {volume.robustness}, "
                         f"{len(volume.healthy_replicas)}/{volume.number_of_replicas} healthy "
                         "replicas")
    return lines


def cnpg_lines(step: StepContext) -> list[str]:
    from adapters.kubernetes import cnpg

    clusters = cnpg.list_clusters(step.services.kube)
    step.records.remember("cnpg", [f"{c.namespace}/{c.name}" for c in clusters])  # did-you-mean
    lines = []
    for c in clusters:
        archiving = {True: "archiving ok", False: "ARCHIVING FAILING", None: "archiving unknown"}
        why = f": {c.archiving_message[:120]}" if c.archiving is False else ""
        lines.append(f"  {c.namespace + '/' + c.name:<24} {ready(c.ready):<10} "
                     f"{archiving[c.archiving]}{why}")
    return lines or ["  none"]


def drill_lines(step: StepContext) -> list[str]:
    """The drill namespaces in the cluster (handlers/drill.py): running drills, and any the
    sweeper has yet to remove."""
    from adapters.kubernetes import drills

    now, lines = time.time(), []
    for space in drills.list_namespaces(step.services.kube):
        state = "being deleted" if space.terminating else (
            "OVERDUE (the sweeper removes it)" if space.overdue(now)
            else f"deadline in {int(space.deadline - now)}s")
        lines.append(f"  {space.name}: {space.target or '?'}, job {space.job or '?'}, {state}")
    return lines or ["  none"]


def job_lines(step: StepContext) -> list[str]:
    lines = []
    for job_id in step.records.active():
        if job_id == step.job_id:
            continue
        job = step.records.job(job_id)
        if job.terminal:
            continue
        current = job.current_step
        at = f" at {current.name}" if current and job.status == JobStatus.RUNNING else ""
        lines.append(f"  {job.id} /dr {job.command} ({job.requester}) {job.status}{at}, "
                     f"{int(time.time() - job.created)}s")
    return lines or ["  none"]


def overview(step: StepContext) -> dict[str, Any]:
    lines = [*section("Nodes:", lambda: node_lines(step)),
             *section("Flux:", lambda: flux_lines(step)),
             *section("Longhorn:", lambda: longhorn_lines(step)),
             *section("CloudNativePG:", lambda: cnpg_lines(step)),
             *section("Drills in progress:", lambda: drill_lines(step)),
             *section("drbot jobs in progress:", lambda: job_lines(step))]
    return {"text": "\n".join(lines)}


@runbook("status", summary="one screen: nodes, Flux, Longhorn, CNPG and running jobs",
         mutating=False, timeout=120)
def status(ctx: PlanContext) -> Runbook:
    return Runbook([StepDef("read cluster state", overview)], targets=[],
                   summary=lambda results: results["read cluster state"]["text"])

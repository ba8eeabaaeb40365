"""Longhorn after a node died: remove its replicas and its Longhorn Node, keeping every last copy."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.errors import AdapterError, Conflict, NotFound, Refused
from adapters.kubernetes._wait import wait_for
from adapters.kubernetes.client import Kube
from adapters.kubernetes.longhorn._objects import NS, name_of
from adapters.kubernetes.longhorn.volumes import (
    label,
    list_replicas,
    list_volumes,
    volumes_losing_last_replica,
)
from adapters.kubernetes.resources import LH_ENGINES, LH_NODES, LH_REPLICAS, Resource
from adapters.progress import Hooks, Progress


@dataclass
class NodeCleanup:
    node: str
    deleted_replicas: list[str]
    node_deleted: bool


def clean_dead_node(
    kube: Kube,
    node: str,
    hooks: Hooks | None = None,
    *,
    timeout: float = 120.0,
    poll: float = 2.0,
) -> NodeCleanup:
    """Remove what a dead node leaves in Longhorn, so its rebuilt namesake can schedule again.

    Deletes the node's replicas whose volume has a healthy copy elsewhere, sets
    ``spec.allowScheduling=false`` on the Longhorn Node and deletes it (its admission webhook
    allows that only without replicas or engines left on the node). Refuses before changing
    anything when a replica there is the last copy of a volume.
    """
    hooks = hooks or Hooks()
    labels = {v.name: label(v) for v in list_volumes(kube)}  # as people know them: ns/pvc
    losing = volumes_losing_last_replica(kube, node)
    if losing:
        named = ", ".join(f"{labels[v]} ({v})" if labels.get(v, v) != v else v for v in losing)
        raise Refused(
            f"Node {node} holds the last copy of Longhorn volume(s) {named}; "
            "cleaning it up would lose their data. Restore them from backup or bring the node "
            "back first."
        )
    doomed = [r for r in list_replicas(kube) if r.node == node]
    for replica in doomed:
        try:
            kube.delete_object(LH_REPLICAS, replica.name, NS)
        except NotFound:
            continue
        volume = labels.get(replica.volume, replica.volume)
        hooks.report(Progress(f"Deleted the failed replica of {volume} on {node}",
                              target=volume, host=node, task="longhorn-cleanup",
                              status="deleted"))
    _wait_gone(kube, LH_REPLICAS, {r.name for r in doomed}, node, timeout, poll, hooks)
    try:
        kube.patch_object(LH_NODES, node, {"spec": {"allowScheduling": False}}, NS)
    except NotFound:
        hooks.report(Progress(f"Longhorn node {node} is already gone", target=node,
                              task="longhorn-cleanup", status="done"))
        return NodeCleanup(node, [r.name for r in doomed], node_deleted=False)
    engines = [
        name_of(e) for e in kube.list_objects(LH_ENGINES, NS)
        if (e.get("spec") or {}).get("nodeID") == node
    ]
    if engines:
        raise Conflict(
            f"Longhorn still has engine(s) {', '.join(engines)} on node {node}, so its Node "
            "object cannot be deleted yet; attach those volumes on another node, then retry."
        )
    try:
        kube.delete_object(LH_NODES, node, NS)
    except NotFound:
        pass
    except AdapterError as exc:
        raise AdapterError(
            f"Longhorn refused to delete its Node {node}: {exc}. Its Ready condition must be "
            "False (KubernetesNodeGone/ManagerPodMissing): delete the Kubernetes Node first."
        ) from None
    hooks.report(Progress(f"Deleted Longhorn node {node}", target=node,
                          task="longhorn-cleanup", status="done"))
    return NodeCleanup(node, [r.name for r in doomed], node_deleted=True)


def _wait_gone(
    kube: Kube, res: Resource, names: set[str], node: str, timeout: float, poll: float,
    hooks: Hooks,
) -> None:
    if not names:
        return

    def gone() -> bool | None:
        left = names & {name_of(o) for o in kube.list_objects(res, NS)}
        return True if not left else None

    wait_for(
        gone, timeout=timeout, poll=poll, hooks=hooks,
        timeout_message=lambda err: (
            f"Longhorn {res.plural} of node {node} were deleted but are still there after "
            f"{timeout:.0f}s: {', '.join(sorted(names))}. Check longhorn-manager's logs."
        ),
        cancel_message=f"Stopped waiting for Longhorn to remove the replicas of node {node}.",
    )


def node_names(kube: Kube) -> set[str]:
    """The names of the Longhorn Node objects that exist now."""
    return {name_of(n) for n in kube.list_objects(LH_NODES, NS)}

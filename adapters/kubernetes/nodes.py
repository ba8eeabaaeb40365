"""Kubernetes Nodes: read, cordon, drain (policy/v1 evictions), delete, wait until Ready.

Field and label selectors are sent to the server and applied again here, because not every
server honours them (and a wrong filter here would evict the wrong pods).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from adapters.errors import Conflict, NotFound
from adapters.kubernetes._wait import wait_for
from adapters.kubernetes.client import Kube
from adapters.progress import Hooks, Progress

ROLE_PREFIX = "node-role.kubernetes.io/"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
# K3s removes a server's etcd member only in the finalizer of its managed-etcd controller, by the
# member name in this annotation (k3s pkg/etcd/member_controller.go, onRemove; wrangler names
# an OnRemove handler's finalizer "wrangler.cattle.io/<handler>").
ETCD_FINALIZER = "wrangler.cattle.io/managed-etcd-controller"
ETCD_NAME_ANNOTATION = "etcd.k3s.cattle.io/node-name"
_PDB_IN_MESSAGE = re.compile(r"disruption budget (\S+)")


@dataclass
class KubeNode:
    name: str
    ready: bool
    unschedulable: bool
    roles: list[str]
    etcd: bool
    internal_ip: str
    ready_reason: str = ""
    ready_message: str = ""
    finalizers: list[str] = field(default_factory=list)
    deleting: bool = False
    etcd_member: str = ""  # the etcd member name K3s recorded in ETCD_NAME_ANNOTATION

    def etcd_removal_gap(self) -> str:
        """Why deleting this server Node would not remove its etcd member ("" when it would)."""
        if not self.etcd:
            return ""
        missing = [what for what, ok in (
            (f"the finalizer {ETCD_FINALIZER}", ETCD_FINALIZER in self.finalizers),
            (f"the annotation {ETCD_NAME_ANNOTATION}", bool(self.etcd_member))) if not ok]
        return " and ".join(missing)


@dataclass
class Pod:
    name: str
    namespace: str
    node: str
    phase: str
    owner_kind: str
    daemonset: bool
    mirror: bool
    labels: dict[str, str] = field(default_factory=dict)
    pvcs: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def _to_node(obj: Any) -> KubeNode:
    meta, spec, status = obj.metadata, obj.spec, obj.status
    labels = dict(meta.labels or {})
    roles = sorted(k[len(ROLE_PREFIX):] for k in labels if k.startswith(ROLE_PREFIX))
    conditions = (status.conditions if status else None) or []
    ready = next((c for c in conditions if c.type == "Ready"), None)
    ip = next(
        (a.address for a in ((status.addresses if status else None) or [])
         if a.type == "InternalIP"),
        "",
    )
    return KubeNode(
        name=meta.name,
        ready=bool(ready and ready.status == "True"),
        unschedulable=bool(spec and spec.unschedulable),
        roles=roles,
        etcd=labels.get(ROLE_PREFIX + "etcd") == "true",
        internal_ip=ip or "",
        ready_reason=(ready.reason or "") if ready else "",
        ready_message=(ready.message or "") if ready else "",
        finalizers=list(meta.finalizers or []),
        deleting=meta.deletion_timestamp is not None,
        etcd_member=str((meta.annotations or {}).get(ETCD_NAME_ANNOTATION) or ""),
    )


def _to_pod(obj: Any) -> Pod:
    meta, spec = obj.metadata, obj.spec
    owners = meta.owner_references or []
    controller = next((o for o in owners if o.controller), owners[0] if owners else None)
    owner_kind = controller.kind if controller else ""
    pvcs = [
        v.persistent_volume_claim.claim_name
        for v in ((spec.volumes if spec else None) or [])
        if v.persistent_volume_claim is not None
    ]
    return Pod(
        name=meta.name,
        namespace=meta.namespace,
        node=(spec.node_name if spec else "") or "",
        phase=(obj.status.phase if obj.status else "") or "",
        owner_kind=owner_kind,
        daemonset=owner_kind == "DaemonSet",
        mirror=MIRROR_ANNOTATION in (meta.annotations or {}),
        labels=dict(meta.labels or {}),
        pvcs=pvcs,
    )


def list_nodes(kube: Kube) -> list[KubeNode]:
    """Every Node, sorted by name."""
    result = kube.call(kube.core.list_node)
    return sorted((_to_node(n) for n in result.items or []), key=lambda n: n.name)


def get_node(kube: Kube, name: str) -> KubeNode:
    """One Node; NotFound names it."""
    try:
        return _to_node(kube.call(kube.core.read_node, name))
    except NotFound:
        raise NotFound(f"Node {name} does not exist in the cluster.") from None


def cordon(kube: Kube, name: str) -> KubeNode:
    """Mark the node unschedulable (idempotent)."""
    get_node(kube, name)
    return _to_node(kube.call(kube.core.patch_node, name, {"spec": {"unschedulable": True}}))


def uncordon(kube: Kube, name: str) -> KubeNode:
    """Mark the node schedulable again (idempotent)."""
    get_node(kube, name)
    return _to_node(kube.call(kube.core.patch_node, name, {"spec": {"unschedulable": False}}))


def pods_on_node(kube: Kube, node: str) -> list[Pod]:
    """Every pod bound to ``node`` (selector on the server, checked again here)."""
    result = kube.call(
        kube.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}"
    )
    pods = [_to_pod(p) for p in result.items or []]
    return sorted((p for p in pods if p.node == node), key=lambda p: (p.namespace, p.name))


def _evictable(pod: Pod) -> bool:
    return not pod.daemonset and not pod.mirror


def _evict(kube: Kube, pod: Pod) -> str:
    """'evicted', 'gone', or the reason it is blocked (a PodDisruptionBudget)."""
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod.name, "namespace": pod.namespace},
    }
    try:
        kube.call(kube.core.create_namespaced_pod_eviction, pod.name, pod.namespace, body)
    except NotFound:
        return "gone"
    except Conflict as exc:  # 429: a PodDisruptionBudget does not allow it now
        return str(exc)
    return "evicted"


def _matches(selector: Any, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    wanted = selector.match_labels or {}
    if not wanted and not selector.match_expressions:
        return True
    if any(labels.get(k) != v for k, v in wanted.items()):
        return False
    for expr in selector.match_expressions or []:
        value, values = labels.get(expr.key), expr.values or []
        if expr.operator == "In" and value not in values:
            return False
        if expr.operator == "NotIn" and value in values:
            return False
        if expr.operator == "Exists" and expr.key not in labels:
            return False
        if expr.operator == "DoesNotExist" and expr.key in labels:
            return False
    return True


def _pdb_names(kube: Kube, pod: Pod, message: str) -> list[str]:
    """The PodDisruptionBudgets protecting ``pod``: from the 429 message, else by selector."""
    named = _PDB_IN_MESSAGE.findall(message)
    if named:
        return sorted(set(named))
    try:
        result = kube.call(kube.disruption_budgets.list_namespaced_pod_disruption_budget, pod.namespace)
    except Exception:  # naming the PDB is a courtesy; the timeout is reported either way
        return []
    return sorted(
        p.metadata.name for p in result.items or [] if _matches(p.spec.selector, pod.labels)
    )


def drain(
    kube: Kube,
    node: str,
    timeout: float = 300.0,
    hooks: Hooks | None = None,
    *,
    poll: float = 2.0,
) -> list[str]:
    """Evict every pod from ``node`` (not DaemonSet or mirror pods) and wait until they are gone.

    A pod protected by a PodDisruptionBudget (429) is retried until ``timeout``; TimedOut then
    names the pods and their budgets. Returns the evicted pods as ``namespace/name``.
    """
    hooks = hooks or Hooks()
    get_node(kube, node)
    evicted: list[str] = []
    blocked: dict[str, str] = {}
    pods_by_ref: dict[str, Pod] = {}

    def step() -> list[str] | None:
        remaining = [p for p in pods_on_node(kube, node) if _evictable(p)]
        if not remaining:
            return evicted
        blocked_now: dict[str, str] = {}
        for pod in remaining:
            pods_by_ref[pod.ref] = pod
            if pod.ref in evicted:
                continue  # eviction accepted; waiting for the pod to terminate
            outcome = _evict(kube, pod)
            if outcome in ("evicted", "gone"):
                evicted.append(pod.ref)
                hooks.report(Progress(f"Evicted pod {pod.ref}", target=pod.ref,
                                      host=node, task="drain", status="evicted"))
                continue
            blocked_now[pod.ref] = outcome
            if blocked.get(pod.ref) != outcome:
                hooks.report(Progress(f"Eviction of pod {pod.ref} refused: {outcome}",
                                      target=pod.ref, host=node, task="drain",
                                      status="blocked"))
        blocked.clear()
        blocked.update(blocked_now)
        return None

    def on_timeout(last_error: str) -> str:
        parts = []
        for ref, message in sorted(blocked.items()):
            pdbs = _pdb_names(kube, pods_by_ref[ref], message)
            which = f"PodDisruptionBudget {', '.join(pdbs)}" if pdbs else "a PodDisruptionBudget"
            parts.append(f"pod {ref} is held by {which} ({message})")
        if not parts:
            waiting = [p.ref for p in pods_on_node(kube, node) if _evictable(p)]
            parts.append("pods still terminating: " + (", ".join(waiting) or "none"))
        return (
            f"Draining node {node} did not finish within {timeout:.0f}s: " + "; ".join(parts)
            + ". Scale the workload up or relax the budget, then retry. The node stays cordoned."
            + (f" Last error: {last_error}" if last_error else "")
        )

    hooks.report(Progress(f"Draining node {node}", target=node, host=node, task="drain",
                          status="started"))
    return wait_for(
        step,
        timeout=timeout,
        poll=poll,
        hooks=hooks,
        timeout_message=on_timeout,
        cancel_message=f"Drain of node {node} cancelled; the node stays cordoned and the pods "
        "already evicted stay evicted.",
    )


def delete_node(
    kube: Kube,
    name: str,
    wait_timeout: float = 300.0,
    hooks: Hooks | None = None,
    *,
    poll: float = 2.0,
) -> None:
    """Delete the Node and wait until it is gone (K3s removes a server's etcd member in a
    finalizer, so the object can linger). Already gone is success."""
    hooks = hooks or Hooks()
    try:
        kube.call(kube.core.delete_node, name)
    except NotFound:
        hooks.report(Progress(f"Node {name} is already gone", target=name, task="delete-node",
                              status="done"))
        return
    hooks.report(Progress(f"Deleted Node {name}; waiting for its finalizers", target=name,
                          task="delete-node", status="waiting"))
    last: dict[str, KubeNode] = {}

    def gone() -> bool | None:
        try:
            last["node"] = get_node(kube, name)
        except NotFound:
            return True
        return None

    def on_timeout(last_error: str) -> str:
        node = last.get("node")
        pending = ", ".join(node.finalizers) if node and node.finalizers else "none listed"
        return (
            f"Node {name} is still there {wait_timeout:.0f}s after it was deleted; pending "
            f"finalizers: {pending}. K3s removes the etcd member in its finalizer: check the "
            "k3s logs on a surviving server." + (f" Last error: {last_error}" if last_error else "")
        )

    wait_for(
        gone,
        timeout=wait_timeout,
        poll=poll,
        hooks=hooks,
        timeout_message=on_timeout,
        cancel_message=f"Stopped waiting for Node {name} to go; it is marked for deletion and "
        "its finalizers still run.",
    )
    hooks.report(Progress(f"Node {name} is gone", target=name, task="delete-node",
                          status="done"))


def wait_ready(
    kube: Kube,
    name: str,
    timeout: float = 600.0,
    hooks: Hooks | None = None,
    *,
    poll: float = 5.0,
) -> KubeNode:
    """Wait until Node ``name`` exists and is Ready (a rebuilt node joining)."""
    hooks = hooks or Hooks()
    last: dict[str, KubeNode] = {}

    def ready() -> KubeNode | None:
        try:
            node = get_node(kube, name)
        except NotFound:
            return None
        last["node"] = node
        return node if node.ready else None

    def on_timeout(last_error: str) -> str:
        node = last.get("node")
        state = (
            f"Ready is not True ({node.ready_reason}: {node.ready_message})".rstrip(": ")
            if node else "it has not joined the cluster"
        )
        return (
            f"Node {name} did not become Ready within {timeout:.0f}s: {state}. Check k3s on "
            "that host (journalctl -u k3s or k3s-agent)."
            + (f" Last error: {last_error}" if last_error else "")
        )

    node = wait_for(
        ready, timeout=timeout, poll=poll, hooks=hooks, timeout_message=on_timeout,
        cancel_message=f"Stopped waiting for Node {name} to become Ready.",
    )
    hooks.report(Progress(f"Node {name} is Ready", target=name, task="wait-ready",
                          status="ready"))
    return node

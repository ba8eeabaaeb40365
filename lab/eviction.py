"""The Eviction API (policy/v1 ``pods/<name>/eviction``), served by the lab's Kubernetes API.

Following the API server's eviction registry (kubernetes pkg/registry/core/pod/storage/
eviction.go): a pod that is gone is 404; a pod a PodDisruptionBudget of its namespace selects
(``spec.selector.matchLabels``) while that budget allows no disruption
(``status.disruptionsAllowed`` 0) is refused with 429 and the budget named in the cause;
otherwise the pod is deleted and the answer is 201 with a Success Status.
"""

from __future__ import annotations

from typing import Any

import kmock

from lab.kube_wire import CONTROLLER_HEADER, status_body

PODS = kmock.resource("", "v1", "pods")
PDBS = kmock.resource("policy", "v1", "poddisruptionbudgets")
BUDGET_REFUSAL = "Cannot evict pod as it would violate the pod's disruption budget."


def blocking_budget(kube: Any, namespace: str, labels: dict[str, str]) -> dict[str, Any] | None:
    """The first PodDisruptionBudget selecting a pod with these labels that allows no
    disruption, or None (read on the emulator's loop)."""
    for pdb in kube.live(PDBS):
        if pdb["metadata"].get("namespace") != namespace:
            continue
        match = (pdb.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
        if not match or any(labels.get(k) != v for k, v in match.items()):
            continue
        if int((pdb.get("status") or {}).get("disruptionsAllowed", 0)) <= 0:
            return pdb
    return None


def refusal(pdb: dict[str, Any]) -> kmock.Response:
    """429 TooManyRequests naming the budget, as the API server words it."""
    status = pdb.get("status") or {}
    cause = {
        "reason": "DisruptionBudget",
        "message": f"The disruption budget {pdb['metadata']['name']} needs "
        f"{status.get('desiredHealthy', 0)} healthy pods and has "
        f"{status.get('currentHealthy', 0)} currently",
    }
    return kmock.Response(status=429, payload=status_body(
        429, "TooManyRequests", BUDGET_REFUSAL, {"causes": [cause]}))


async def evict(kube: Any, request: Any) -> kmock.Response:
    """policy/v1 Eviction of ``request``'s pod on the emulator ``kube``."""
    ns, name = request.namespace, request.name
    pod = kube.current(PODS, ns, name)
    if pod is None:
        return kmock.Response(status=404, payload=status_body(
            404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}))
    pdb = blocking_budget(kube, ns, pod["metadata"].get("labels") or {})
    if pdb is not None:
        return refusal(pdb)
    # Deleted through the API, so watchers and the request log see it as any deletion.
    async with kube.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}",
                            headers={CONTROLLER_HEADER: "1"}) as resp:
        await resp.read()
    return kmock.Response(status=201, payload=status_body(201, "", "", ok=True))

"""Kubernetes' own controllers, as far as drbot's runbooks meet them: the PV controller binds
claims (and Longhorn records the binding), Deployments and StatefulSets keep spec.replicas pods.
The Eviction API is the API server's (`lab.eviction`).
"""

from __future__ import annotations

import uuid

import kmock

from lab import world
from lab.controllers.base import (
    R_LH_VOLUMES,
    R_NODES,
    R_PODS,
    R_PVCS,
    R_PVS,
    ControllerBase,
    condition,
)
from lab.seed.workloads import pod_object

WORKLOADS = [
    kmock.resource("apps", "v1", "deployments"),
    kmock.resource("apps", "v1", "statefulsets"),
]


class WorkloadController(ControllerBase):
    """The PV binder and the Deployment and StatefulSet controllers."""

    async def storage_binding(self) -> None:
        """The PV controller binds a PVC to the PV it names; Longhorn records the binding."""
        pvcs = {(p["metadata"]["namespace"], p["metadata"]["name"]): p
                for p in self.kube.live(R_PVCS)}
        for pv in self.kube.live(R_PVS):
            name, spec = pv["metadata"]["name"], pv.get("spec") or {}
            ref = spec.get("claimRef") or {}
            claim = pvcs.get((ref.get("namespace"), ref.get("name")))
            phase = (pv.get("status") or {}).get("phase")
            if claim is None:
                if ref and phase == "Bound":
                    await self.patch(R_PVS, None, name, {"status": {"phase": "Released"}})
                continue
            if (claim.get("spec") or {}).get("volumeName") != name or phase == "Bound":
                continue
            await self.patch(R_PVS, None, name, {"status": {"phase": "Bound"}})
            await self.patch(R_PVCS, ref["namespace"], ref["name"], {"status": {
                "phase": "Bound", "accessModes": spec.get("accessModes"),
                "capacity": spec.get("capacity")}})
            handle = (spec.get("csi") or {}).get("volumeHandle")
            if handle and self.kube.current(R_LH_VOLUMES, world.LONGHORN_NS, handle):
                await self.patch(R_LH_VOLUMES, world.LONGHORN_NS, handle, {"status": {
                    "kubernetesStatus": {"pvName": name, "pvStatus": "Bound",
                                         "namespace": ref["namespace"],
                                         "pvcName": ref["name"]}}})
            self.state.record(f"pvc {ref['namespace']}/{ref['name']} bound to {name}")

    async def workloads(self) -> None:
        """Deployments and StatefulSets keep spec.replicas pods (matchLabels selectors)."""
        # kube-scheduler places pods on Ready nodes that are not cordoned (its NodeUnschedulable
        # filter plugin, kubernetes pkg/scheduler/framework/plugins/nodeunschedulable).
        nodes = sorted(
            n["metadata"]["name"] for n in self.kube.live(R_NODES)
            if condition(n, "Ready").get("status") == "True"
            and not (n.get("spec") or {}).get("unschedulable")
        )
        pods = self.kube.live(R_PODS)
        for res in WORKLOADS:
            for wl in self.kube.live(res):
                meta, spec = wl["metadata"], wl.get("spec") or {}
                ns, name = meta["namespace"], meta["name"]
                match = (spec.get("selector") or {}).get("matchLabels") or {}
                mine = [p for p in pods if p["metadata"]["namespace"] == ns and match and all(
                    (p["metadata"].get("labels") or {}).get(k) == v for k, v in match.items())]
                want = int(spec.get("replicas", 1))
                for pod in sorted(mine, key=lambda p: p["metadata"]["name"])[want:]:
                    await self.delete(R_PODS, ns, pod["metadata"]["name"])
                    self.state.record(f"pod {ns}/{pod['metadata']['name']} deleted (scaled down)")
                for i in range(len(mine), want if nodes else 0):
                    template = spec.get("template") or {}
                    pod_name = (f"{name}-{i}" if res.plural == "statefulsets"
                                else f"{name}-{uuid.uuid4().hex[:5]}")
                    kind = "StatefulSet" if res.plural == "statefulsets" else "ReplicaSet"
                    body = pod_object(pod_name, ns, nodes[i % len(nodes)],
                                      dict((template.get("metadata") or {}).get("labels") or {}),
                                      (kind, name), (template.get("spec") or {}).get("volumes"))
                    await self.create(R_PODS, ns, body)
                    self.state.record(f"pod {ns}/{pod_name} started")
                ready = min(len(mine), want)
                if (wl.get("status") or {}).get("replicas") != ready:
                    await self.patch(res, ns, name, {"status": {"replicas": ready,
                                                                "readyReplicas": ready}})

"""Deployments and StatefulSets seen from a PVC: the running pods that mount it, the workloads
whose pod template mounts it, and scaling one down to 0 and back while its replica count is kept
in an annotation on the workload itself (so a retry after a crash never takes 0 for the original).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.kubernetes.client import Kube
from adapters.kubernetes.nodes import _to_pod
from adapters.kubernetes.resources import DEPLOYMENTS, STATEFULSETS, Resource

KINDS: dict[str, Resource] = {r.kind: r for r in (DEPLOYMENTS, STATEFULSETS)}


@dataclass
class Workload:
    kind: str  # "Deployment" or "StatefulSet"
    namespace: str
    name: str
    replicas: int  # spec.replicas (1 when unset, as the API server defaults it)
    ready_replicas: int
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    claims: list[str] = field(default_factory=list)  # PVCs its pod template mounts
    # A StatefulSet's volumeClaimTemplates: its pods mount PVCs <template>-<statefulset>-<ordinal>
    claim_templates: list[str] = field(default_factory=list)

    def mounts(self, pvc: str) -> bool:
        """Whether its pods mount ``pvc``, named in the pod template or made from a claim template
        (Kubernetes' StatefulSet controller names them <template>-<statefulset>-<ordinal>)."""
        if pvc in self.claims:
            return True
        for template in self.claim_templates:
            ordinal = pvc.removeprefix(f"{template}-{self.name}-")
            if ordinal != pvc and ordinal.isdigit():
                return True
        return False

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def _resource(kind: str) -> Resource:
    if kind not in KINDS:
        raise ValueError(f"not a workload kind drbot scales: {kind} (Deployment or StatefulSet)")
    return KINDS[kind]


def _to_workload(kind: str, obj: dict[str, Any]) -> Workload:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    volumes = ((spec.get("template") or {}).get("spec") or {}).get("volumes") or []
    templates = [str((t.get("metadata") or {}).get("name") or "")
                 for t in spec.get("volumeClaimTemplates") or []]
    return Workload(
        kind=kind,
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        replicas=int(spec["replicas"]) if spec.get("replicas") is not None else 1,
        ready_replicas=int(status.get("readyReplicas") or 0),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        claims=[str(c) for v in volumes
                if (c := (v.get("persistentVolumeClaim") or {}).get("claimName"))],
        claim_templates=[t for t in templates if t],
    )


def pvc_users(kube: Kube, namespace: str, pvc: str) -> list[str]:
    """Names of the Running or Pending pods of ``namespace`` that mount the PVC, sorted."""
    pods = kube.call(kube.core.list_namespaced_pod, namespace).items or []
    return sorted(p.name for p in map(_to_pod, pods)
                  if pvc in p.pvcs and p.phase in ("Running", "Pending"))


def mounting(kube: Kube, namespace: str, pvc: str) -> list[Workload]:
    """The Deployments, then the StatefulSets, of ``namespace`` whose pod template mounts the PVC."""
    return [w for res in (DEPLOYMENTS, STATEFULSETS)
            for w in (_to_workload(res.kind, o) for o in kube.list_objects(res, namespace))
            if w.mounts(pvc)]


def get_workload(kube: Kube, kind: str, namespace: str, name: str) -> Workload:
    """One Deployment or StatefulSet; NotFound when it does not exist."""
    return _to_workload(kind, kube.get_object(_resource(kind), name, namespace))


def scale_down(kube: Kube, kind: str, namespace: str, name: str, keep_in: str) -> int:
    """Scale to 0 and keep the replica count in annotation ``keep_in``; a count already kept
    there (an earlier, interrupted attempt) wins over the current one. Returns the count kept."""
    workload = get_workload(kube, kind, namespace, name)
    before = workload.annotations.get(keep_in)
    replicas = int(before) if before is not None else workload.replicas
    kube.patch_object(_resource(kind), name, {"metadata": {"annotations": {keep_in: str(replicas)}},
                                              "spec": {"replicas": 0}}, namespace)
    return replicas


def scale_up(kube: Kube, kind: str, namespace: str, name: str, replicas: int, kept_in: str) -> None:
    """Scale to ``replicas`` and drop the annotation ``kept_in`` that ``scale_down`` wrote."""
    kube.patch_object(_resource(kind), name, {"metadata": {"annotations": {kept_in: None}},
                                              "spec": {"replicas": replicas}}, namespace)

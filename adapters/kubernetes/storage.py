"""PersistentVolumeClaims and PersistentVolumes: read, create and delete a PVC, keep a PV
(reclaim policy Retain) and bind a PV to a PVC name (its claimRef).

These are the moves of a PVC swap (``/dr restore --replace``); the restore itself (a Longhorn
volume, a static PV and a PVC from a backup) is ``longhorn.restore_backup``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.errors import NotFound
from adapters.kubernetes.client import Kube


@dataclass
class Pvc:
    name: str
    namespace: str
    storage_class: str  # "" when the claim names none
    access_modes: list[str] = field(default_factory=list)
    volume: str = ""  # spec.volumeName: the bound PV, "" while unbound
    phase: str = ""
    labels: dict[str, str] = field(default_factory=dict)


def get_pvc(kube: Kube, namespace: str, name: str) -> Pvc:
    """One PVC; NotFound when it does not exist (or is gone after a delete)."""
    obj = kube.call(kube.core.read_namespaced_persistent_volume_claim, name, namespace)
    spec, status = obj.spec, obj.status
    return Pvc(
        name=obj.metadata.name,
        namespace=obj.metadata.namespace or namespace,
        storage_class=(spec.storage_class_name if spec else "") or "",
        access_modes=list((spec.access_modes if spec else None) or []),
        volume=(spec.volume_name if spec else "") or "",
        phase=(status.phase if status else "") or "",
        labels=dict(obj.metadata.labels or {}),
    )


def create_pvc(kube: Kube, namespace: str, name: str, *, storage_class: str,
               access_modes: list[str], size: str, volume: str) -> None:
    """Create a PVC bound to the existing PV ``volume`` (a static binding: no provisioning)."""
    kube.call(kube.core.create_namespaced_persistent_volume_claim, namespace, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": access_modes, "storageClassName": storage_class,
                 "resources": {"requests": {"storage": size}},
                 "volumeName": volume}})


def delete_pvc(kube: Kube, namespace: str, name: str) -> bool:
    """Ask to delete a PVC: True when asked, False when it was already gone. The PVC may stay a
    while (Terminating) while a pod still mounts it; ``get_pvc`` tells when it is gone."""
    try:
        kube.call(kube.core.delete_namespaced_persistent_volume_claim, name, namespace)
    except NotFound:
        return False
    return True


def retain_pv(kube: Kube, name: str) -> None:
    """Set the PV's reclaim policy to Retain, so deleting its PVC keeps the volume and its data."""
    kube.call(kube.core.patch_persistent_volume, name,
              {"spec": {"persistentVolumeReclaimPolicy": "Retain"}})


def bind_pv(kube: Kube, name: str, namespace: str, pvc: str) -> None:
    """Point the PV's claimRef at ``namespace/pvc`` (no uid: a PVC created under that name next
    binds it, as the old claim's uid would otherwise keep it Released)."""
    kube.call(kube.core.patch_persistent_volume, name, {"spec": {"claimRef": {
        "namespace": namespace, "name": pvc, "uid": None, "resourceVersion": None}}})

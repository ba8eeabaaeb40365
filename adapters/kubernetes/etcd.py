"""K3s etcd snapshots as the cluster records them (``ETCDSnapshotFile``, k3s.cattle.io/v1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.kubernetes.client import Kube
from adapters.kubernetes.resources import ETCD_SNAPSHOT_FILES

STORAGE_NODE_LABEL = "etcd.k3s.cattle.io/snapshot-storage-node"


@dataclass
class EtcdSnapshotFile:
    name: str  # the object name: local-<snapshot>-<6hex> or s3-<snapshot>-<6hex>
    snapshot_name: str
    node: str  # the server that took it ("s3" for the S3 copy)
    location: str  # file:// or s3:// URI
    s3: bool
    created: str
    ready: bool
    size: str  # a Quantity, as recorded
    error: str


def _to_snapshot(obj: dict[str, Any]) -> EtcdSnapshotFile:
    meta = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    location = str(spec.get("location") or "")
    node = str(spec.get("nodeName") or (meta.get("labels") or {}).get(STORAGE_NODE_LABEL) or "")
    error = status.get("error") or {}
    return EtcdSnapshotFile(
        name=str(meta.get("name", "")),
        snapshot_name=str(spec.get("snapshotName") or ""),
        node=node,
        location=location,
        s3=bool(spec.get("s3")) or location.startswith("s3://") or node == "s3",
        created=str(status.get("creationTime") or ""),
        ready=bool(status.get("readyToUse")),
        size=str(status.get("size") or ""),
        error=str(error.get("message") or "") if isinstance(error, dict) else str(error),
    )


def list_etcd_snapshots(kube: Kube) -> list[EtcdSnapshotFile]:
    """Every recorded etcd snapshot (local copies and S3 copies), oldest first."""
    snaps = [_to_snapshot(o) for o in kube.list_objects(ETCD_SNAPSHOT_FILES)]
    return sorted(snaps, key=lambda s: (s.created, s.name))

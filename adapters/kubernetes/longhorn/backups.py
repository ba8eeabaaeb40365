"""Longhorn backups: listing backups, backup volumes and backup targets, and taking a backup now."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.errors import NotFound
from adapters.kubernetes.client import Kube
from adapters.kubernetes.longhorn._objects import NS, condition, name_of
from adapters.kubernetes.resources import LH_BACKUPS, LH_BACKUPTARGETS, LH_BACKUPVOLUMES

# The label of a backup that records the volume's Kubernetes status (PV, PVC, namespace) as JSON
# (longhorn-manager types/types.go KubernetesStatusLabel), and the one that records the volume's
# access mode, rwo or rwx (types.LonghornLabelVolumeAccessMode under the longhorn.io/ prefix).
K8S_STATUS_LABEL = "KubernetesStatus"
ACCESS_MODE_LABEL = "longhorn.io/volume-access-mode"


@dataclass
class Backup:
    name: str
    volume: str
    state: str
    created: str  # status.backupCreatedAt
    snapshot_created: str
    url: str
    size: str
    volume_size: str
    error: str
    pvc: str
    pvc_namespace: str
    target: str
    access_mode: str = ""  # rwo or rwx, as recorded by the backup; "" when unknown


def restorable(backup: Backup) -> bool:
    """Whether a restore can put ``backup`` back where it was: Completed, with a URL, and
    recording its PVC and namespace. The one test both the coverage check and the restore plan
    use, so a backup that records no PVC is neither counted nor silently skipped.
    """
    return (backup.state == "Completed" and bool(backup.url) and bool(backup.pvc)
            and bool(backup.pvc_namespace))


@dataclass
class BackupVolume:
    name: str  # v1.8+: <volume>-<hash>; v1.7: the volume name
    volume: str
    target: str
    last_backup: str
    last_backup_at: str
    last_synced_at: str
    storage_class: str = ""  # status.storageClassName: the PVC's class when it was backed up
    labels: dict[str, str] | None = None


@dataclass
class BackupTarget:
    name: str
    url: str
    available: bool
    message: str
    last_synced_at: str


def _to_backup(obj: dict[str, Any]) -> Backup:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    # status.labels are what the store recorded (the backup controller copies them from the
    # backup's cfg); spec.labels are what was asked for, before the backup completed.
    recorded_labels = {**(spec.get("labels") or {}), **(status.get("labels") or {})}
    recorded = recorded_labels.get(K8S_STATUS_LABEL)
    try:
        k8s = json.loads(recorded) if recorded else {}
    except (TypeError, ValueError):
        k8s = {}
    return Backup(
        name=name_of(obj),
        volume=str(status.get("volumeName") or labels.get("backup-volume") or ""),
        state=str(status.get("state") or ""),
        created=str(status.get("backupCreatedAt") or ""),
        snapshot_created=str(status.get("snapshotCreatedAt") or ""),
        url=str(status.get("url") or ""),
        size=str(status.get("size") or ""),
        volume_size=str(status.get("volumeSize") or ""),
        error=str(status.get("error") or ""),
        pvc=str((k8s or {}).get("pvcName") or ""),
        pvc_namespace=str((k8s or {}).get("namespace") or ""),
        target=str(spec.get("backupTargetName") or status.get("backupTargetName")
                   or labels.get("backup-target") or ""),
        access_mode=str(recorded_labels.get(ACCESS_MODE_LABEL) or ""),
    )


def list_backups(kube: Kube, volume: str | None = None) -> list[Backup]:
    """Longhorn backups (of ``volume`` if given), oldest first."""
    backups = [_to_backup(o) for o in kube.list_objects(LH_BACKUPS, NS)]
    backups = [b for b in backups if volume is None or b.volume == volume]
    return sorted(backups, key=lambda b: (b.created, b.name))


def get_backup(kube: Kube, name: str) -> Backup:
    try:
        return _to_backup(kube.get_object(LH_BACKUPS, name, NS))
    except NotFound:
        raise NotFound(f"Longhorn backup {name} does not exist.") from None


def latest_backup(kube: Kube, volume: str) -> Backup | None:
    """The newest Completed backup of ``volume``, or None."""
    done = [b for b in list_backups(kube, volume) if b.state == "Completed"]
    return done[-1] if done else None


def latest_restorable(backups: list[Backup]) -> dict[tuple[str, str], Backup]:
    """(namespace, pvc) -> the newest restorable backup among ``backups`` (oldest first)."""
    latest: dict[tuple[str, str], Backup] = {}
    for backup in backups:
        if restorable(backup):
            latest[(backup.pvc_namespace, backup.pvc)] = backup
    return latest


def _to_backup_volume(obj: dict[str, Any]) -> BackupVolume:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    # v1.8+ names it <volume>-<hash> and records the volume in spec; v1.7 names it the volume.
    volume = spec.get("volumeName") or labels.get("backup-volume") or name_of(obj)
    return BackupVolume(
        name=name_of(obj),
        volume=str(volume),
        target=str(spec.get("backupTargetName") or labels.get("backup-target") or "default"),
        last_backup=str(status.get("lastBackupName") or ""),
        last_backup_at=str(status.get("lastBackupAt") or ""),
        last_synced_at=str(status.get("lastSyncedAt") or ""),
        storage_class=str(status.get("storageClassName") or ""),
        labels=dict(status.get("labels") or {}),
    )


def list_backup_volumes(kube: Kube) -> list[BackupVolume]:
    bvs = [_to_backup_volume(o) for o in kube.list_objects(LH_BACKUPVOLUMES, NS)]
    return sorted(bvs, key=lambda b: (b.volume, b.target))


def _to_backup_target(obj: dict[str, Any]) -> BackupTarget:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    unavailable = condition(obj, "Unavailable")
    return BackupTarget(
        name=name_of(obj),
        url=str(spec.get("backupTargetURL") or ""),
        available=bool(status.get("available")),
        message=str(unavailable.get("message") or "") if unavailable.get("status") == "True"
        else "",
        last_synced_at=str(status.get("lastSyncedAt") or ""),
    )


def list_backup_targets(kube: Kube) -> list[BackupTarget]:
    return sorted((_to_backup_target(o) for o in kube.list_objects(LH_BACKUPTARGETS, NS)),
                  key=lambda t: t.name)


def get_backup_target(kube: Kube, name: str = "default") -> BackupTarget:
    try:
        return _to_backup_target(kube.get_object(LH_BACKUPTARGETS, name, NS))
    except NotFound:
        raise NotFound(
            f"Longhorn backup target {name} does not exist: set one in Longhorn's settings."
        ) from None


def request_target_sync(kube: Kube, name: str, at: datetime) -> None:
    """Ask backup target ``name`` to sync from the store now: Longhorn syncs a target whose
    ``spec.syncRequestedAt`` is after its ``status.lastSyncedAt`` (longhorn-manager
    controller/backup_target_controller.go), instead of waiting for its poll interval."""
    kube.patch_object(LH_BACKUPTARGETS, name, {"spec": {
        "syncRequestedAt": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}}, NS)

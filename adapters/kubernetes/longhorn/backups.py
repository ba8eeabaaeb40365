"""Longhorn backups: listing backups, backup volumes and backup targets, and taking a backup now."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.errors import AdapterError, Conflict, NotFound
from adapters.kubernetes._wait import wait_for
from adapters.kubernetes.client import Kube
from adapters.kubernetes.longhorn._objects import NS, condition, name_of
from adapters.kubernetes.longhorn.volumes import get_volume
from adapters.kubernetes.resources import (
    LH_BACKUPS,
    LH_BACKUPTARGETS,
    LH_BACKUPVOLUMES,
    LH_SNAPSHOTS,
)
from adapters.progress import Hooks, Progress


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


@dataclass
class BackupVolume:
    name: str  # v1.8+: <volume>-<hash>; v1.7: the volume name
    volume: str
    target: str
    last_backup: str
    last_backup_at: str
    last_synced_at: str


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
    recorded = (status.get("labels") or spec.get("labels") or {}).get("KubernetesStatus")
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
        target=str(status.get("backupTargetName") or labels.get("backup-target") or ""),
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


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def new_backup_name(volume: str) -> str:
    """A fresh name for the Snapshot and Backup of ``volume`` that trigger_backup creates."""
    return f"drbot-{volume}-{_stamp()}"[:63].rstrip("-")


def _create_once(kube: Kube, res: Any, body: dict[str, Any]) -> None:
    """Create, or find it created already (by an earlier attempt under the same name)."""
    with contextlib.suppress(Conflict):
        kube.create_object(res, body)


def trigger_backup(
    kube: Kube,
    volume: str,
    *,
    wait: bool = True,
    timeout: float = 1800.0,
    poll: float = 5.0,
    hooks: Hooks | None = None,
    target: str = "default",
    name: str = "",
) -> Backup:
    """Back up ``volume`` now: a Snapshot CR, then a Backup CR of that snapshot.

    With ``wait`` the call returns once the Backup is Completed (AdapterError on Error). Given
    a ``name`` (new_backup_name) that an earlier call created already, it goes on with those
    objects instead of starting a second backup.
    """
    hooks = hooks or Hooks()
    get_volume(kube, volume)
    name = name or new_backup_name(volume)
    _create_once(kube, LH_SNAPSHOTS, {
        "metadata": {"name": name, "namespace": NS, "labels": {"longhornvolume": volume}},
        "spec": {"volume": volume, "createSnapshot": True, "labels": {"created-by": "drbot"}},
    })
    hooks.report(Progress(f"Snapshot {name} of volume {volume} requested", target=volume,
                          task="backup", status="snapshot"))

    def snapshot_ready() -> bool | None:
        status = kube.get_object(LH_SNAPSHOTS, name, NS).get("status") or {}
        if status.get("error"):
            raise AdapterError(f"Longhorn could not snapshot volume {volume}: {status['error']}")
        return True if status.get("readyToUse") else None

    wait_for(
        snapshot_ready, timeout=timeout, poll=poll, hooks=hooks,
        timeout_message=lambda err: f"The snapshot {name} of volume {volume} was not ready "
        f"within {timeout:.0f}s; is the volume attached and healthy?",
        cancel_message=f"Stopped waiting for snapshot {name} of volume {volume}.",
    )
    _create_once(kube, LH_BACKUPS, {
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"backup-volume": volume, "backup-target": target}},
        "spec": {"snapshotName": name, "labels": {"created-by": "drbot"}},
    })
    hooks.report(Progress(f"Backup {name} of volume {volume} started", target=volume,
                          task="backup", status="started"))
    if not wait:
        return get_backup(kube, name)

    def completed() -> Backup | None:
        backup = get_backup(kube, name)
        if backup.state == "Error":
            raise AdapterError(f"Longhorn backup {name} of volume {volume} failed: {backup.error}")
        return backup if backup.state == "Completed" else None

    backup = wait_for(
        completed, timeout=timeout, poll=poll, hooks=hooks,
        timeout_message=lambda err: f"Longhorn backup {name} of volume {volume} did not "
        f"complete within {timeout:.0f}s; check the backup target.",
        cancel_message=f"Stopped waiting for backup {name}; Longhorn goes on with it.",
    )
    hooks.report(Progress(f"Backup {name} of volume {volume} completed", target=volume,
                          task="backup", status="done"))
    return backup

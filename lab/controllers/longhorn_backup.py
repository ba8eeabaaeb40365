"""Longhorn taking a backup: its backup mutator, its snapshot controller and its backup
controller, writing the completed backup into the lab's backup store.

What it follows in longhorn-manager (each is what a runbook taking a backup depends on):
- ``webhook/resources/backup/mutator.go``: a new Backup gets the ``backup-volume`` label (from
  its snapshot's volume), the ``backup-target`` label (the volume's ``spec.backupTargetName``)
  unless set, and ``longhorn.io/volume-access-mode`` in ``spec.labels`` (the volume's
  ``spec.accessMode``, rwo by default). It adds no ``KubernetesStatus``: only the REST API's
  SnapshotBackup does (``api/snapshot.go``).
- ``controller/snapshot_controller.go``: a Snapshot of a volume whose engine is not running gets
  ``status.error`` "failed to take snapshot because the volume engine ... is not running. Waiting
  for the volume to be attached" while Longhorn attaches the volume; once taken, the error is
  cleared and ``readyToUse`` set.
- ``controller/backup_controller.go``: once the snapshot is ready the backup runs (``InProgress``,
  one pass here); at the end
  ``status`` holds the store's record: ``labels`` (the spec labels it was taken with), ``url``
  (backupstore ``EncodeBackupURL``: the target's URL, ``?backup=<name>&volume=<volume>``),
  ``volumeSize`` (the volume's size) and ``size`` (the data stored, smaller), or ``state: Error``.
- The backup itself (longhorn/backupstore ``deltablock.go`` CreateDeltaBlockBackup, then
  ``saveBackup`` and ``saveVolume``): ``backup_<name>.cfg`` under the volume's folder of the
  store, and ``volume.cfg`` pointing ``LastBackupName``/``LastBackupAt`` at it, written before
  the Backup is marked Completed. So the backup watch, `/dr verify` and the target's sync find
  it in the bucket. The lab's volumes never change, so, as an incremental backup of unchanged
  data does, the new cfg lists the blocks of the volume's last backup and uploads none.

The real webhook acts at admission; here it acts on the controller's next pass, before the
backup controller looks at the object, which is all a client can observe.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from adapters import backupstore
from adapters.s3 import ObjectStore
from lab import store_writers as sw
from lab import world
from lab.controllers.base import (
    R_LH_BACKUPS,
    R_LH_BACKUPTARGETS,
    R_LH_SNAPSHOTS,
    R_LH_VOLUMES,
    ControllerBase,
)
from lab.kube_wire import now_iso

ACCESS_MODE = "longhorn.io/volume-access-mode"
ATTACH_WAIT = ("failed to take snapshot because the volume engine {engine} is not running. "
               "Waiting for the volume to be attached")


class BackupState(StrEnum):
    """Longhorn's backup states (longhorn-manager k8s/pkg/apis/longhorn/v1beta2/backup.go)."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    ERROR = "Error"


class LonghornBackupController(ControllerBase):
    """Longhorn's backup mutator and its snapshot and backup controllers.

    ``attach_passes``: passes a detached volume takes to attach for a snapshot. ``backup_error``:
    the error every backup ends in (None: they complete; a test's fault). ``snapshot_errors``
    (on ControllerBase) records each Snapshot error set, so a test can show the transient one
    happened. ``longhorn_store`` (set by lab.Lab, shared with the target's sync) is where a
    completed backup is written; without one (the adapters' tests) nothing is written.
    """

    attach_passes: int = 3
    backup_error: str | None = None
    longhorn_store: Callable[[], ObjectStore] | None = None

    async def longhorn_backups(self) -> None:
        for snap in self.kube.live(R_LH_SNAPSHOTS):
            await self.snapshot(snap)
        for backup in self.kube.live(R_LH_BACKUPS):
            await self.take_backup(backup)

    def lh_volume(self, name: str) -> dict[str, Any] | None:
        return self.kube.current(R_LH_VOLUMES, world.LONGHORN_NS, name)

    async def snapshot(self, snap: dict[str, Any]) -> None:
        status, name = snap.get("status") or {}, snap["metadata"]["name"]
        if status.get("readyToUse") or not (snap.get("spec") or {}).get("createSnapshot"):
            return
        volume = self.lh_volume(str((snap.get("spec") or {}).get("volume") or ""))
        if volume is None:
            return
        if (volume.get("status") or {}).get("state") != "attached":
            passes = self.snapshot_attaching.get(name, 0)
            if passes == 0:
                error = ATTACH_WAIT.format(engine=f"{volume['metadata']['name']}-e-0")
                self.snapshot_errors.append(error)
                await self.patch(R_LH_SNAPSHOTS, world.LONGHORN_NS, name,
                                 {"status": {"error": error}})
            self.snapshot_attaching[name] = passes + 1
            if passes + 1 >= self.attach_passes:
                await self.patch(R_LH_VOLUMES, world.LONGHORN_NS, volume["metadata"]["name"],
                                 {"status": {"state": "attached"}})
            return
        await self.patch(R_LH_SNAPSHOTS, world.LONGHORN_NS, name, {"status": {
            "readyToUse": True, "error": "", "creationTime": now_iso()}})

    def mutate(self, backup: dict[str, Any]) -> dict[str, Any] | None:
        """The backup mutator's additions; None when the snapshot or volume is unknown."""
        snap_name = str((backup.get("spec") or {}).get("snapshotName") or "")
        snap = self.kube.current(R_LH_SNAPSHOTS, world.LONGHORN_NS, snap_name) if snap_name else None
        volume = self.lh_volume(str((snap.get("spec") or {}).get("volume") or "")) if snap else None
        if volume is None:
            return None
        spec_labels = dict((backup.get("spec") or {}).get("labels") or {})
        spec_labels.setdefault(ACCESS_MODE, (volume.get("spec") or {}).get("accessMode") or "rwo")
        labels = dict(backup["metadata"].get("labels") or {})
        labels.setdefault("backup-volume", volume["metadata"]["name"])
        labels.setdefault("backup-target",
                          (volume.get("spec") or {}).get("backupTargetName") or "default")
        return {"metadata": {"labels": labels}, "spec": {"labels": spec_labels}}

    async def take_backup(self, backup: dict[str, Any]) -> None:
        name, status = backup["metadata"]["name"], backup.get("status") or {}
        if status.get("state") in (BackupState.COMPLETED, BackupState.ERROR):
            return
        if not status.get("state"):
            change = self.mutate(backup)
            if change is not None:
                change["status"] = {"state": BackupState.PENDING}
                await self.patch(R_LH_BACKUPS, world.LONGHORN_NS, name, change)
            return
        snap_name = str(backup["spec"]["snapshotName"])
        snap = self.kube.current(R_LH_SNAPSHOTS, world.LONGHORN_NS, snap_name)
        if snap is None or not (snap.get("status") or {}).get("readyToUse"):
            return
        if self.backup_error is not None:
            await self.patch(R_LH_BACKUPS, world.LONGHORN_NS, name, {"status": {
                "state": BackupState.ERROR, "error": self.backup_error}})
        elif status.get("state") == BackupState.PENDING:
            await self.patch(R_LH_BACKUPS, world.LONGHORN_NS, name, {"status": {
                "state": BackupState.IN_PROGRESS, "progress": 0}})
        else:
            await self.complete_backup(backup, snap)

    async def complete_backup(self, backup: dict[str, Any], snap: dict[str, Any]) -> None:
        name, labels = backup["metadata"]["name"], backup["metadata"]["labels"]
        volume_name, target = labels["backup-volume"], labels["backup-target"]
        volume = self.lh_volume(volume_name) or {}
        size = int((volume.get("spec") or {}).get("size") or 0)
        snapshot_at = str((snap.get("status") or {}).get("creationTime") or now_iso())
        created = datetime.now(UTC)
        if self.longhorn_store is not None:
            await asyncio.to_thread(
                store_backup, self.longhorn_store(), volume_name, name, snap["metadata"]["name"],
                created,
                datetime.fromisoformat(snapshot_at.replace("Z", "+00:00")), size,
                dict(backup["spec"].get("labels") or {}))
        await self.patch(R_LH_BACKUPS, world.LONGHORN_NS, name, {"status": {
            "state": BackupState.COMPLETED, "progress": 100, "url": f"{self.target_url(target)}?backup={name}"
            f"&volume={volume_name}", "volumeName": volume_name, "volumeSize": str(size),
            "size": str(size // 8), "labels": dict(backup["spec"].get("labels") or {}),
            "backupTargetName": target, "snapshotName": backup["spec"]["snapshotName"],
            "backupCreatedAt": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "snapshotCreatedAt": snapshot_at}})
        self.state.record(f"longhorn: backup {name} of {volume_name} completed")

    def target_url(self, target: str) -> str:
        found = self.kube.current(R_LH_BACKUPTARGETS, world.LONGHORN_NS, target) or {}
        return str((found.get("spec") or {}).get("backupTargetURL") or world.BACKUP_TARGET_URL)


def store_backup(store: ObjectStore, volume: str, name: str, snapshot: str, created: datetime,
                 snapshot_at: datetime, size: int, labels: dict[str, str]) -> None:
    """Write the backup's cfg (the last backup's blocks, the labels it was taken with), then
    point volume.cfg at it, in Longhorn's format (lab/store_writers.py)."""
    blocks: list[Any] = []
    if store.exists(backupstore.longhorn_volume_cfg_key("", volume)):
        last = backupstore.longhorn_volume(store, "", volume).last_backup_name
        key = backupstore.longhorn_backup_cfg_key("", volume, last)
        if last and store.exists(key):
            blocks = list(json.loads(store.read(key)).get("Blocks") or [])
    cfg = json.loads(sw.longhorn_backup_cfg(volume, name, created, size // 8, snapshot_at))
    cfg.update({"SnapshotName": snapshot, "Labels": labels, "Blocks": blocks})
    store.upload(backupstore.longhorn_backup_cfg_key("", volume, name), json.dumps(cfg).encode())
    sw.write_longhorn_volume(store, "", volume, size=size, last_backup_name=name,
                             last_backup_at=snapshot_at)

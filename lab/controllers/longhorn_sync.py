"""Longhorn's backup target: re-created by Longhorn when it runs again after the cluster's
datastore was lost, and its sync, which pulls the store's volumes and backups into BackupVolume
and Backup objects.

What it follows in longhorn-manager:
- ``controller/backup_target_controller.go``: a target syncs when it never did
  (``status.lastSyncedAt`` empty), when ``spec.syncRequestedAt`` is after ``lastSyncedAt``, or
  every ``spec.pollInterval`` (300 s by default); it creates a BackupVolume
  ``<volume>-<hash>`` for every store volume the cluster lacks, sets ``status.available`` and
  ``lastSyncedAt``.
- ``controller/backup_volume_controller.go``: a BackupVolume pulls its volume's backups into
  Backup objects (named as in the store, ``status`` from each backup's cfg: labels, URL,
  times, ``volumeSize`` from volume.cfg) and records ``storageClassName`` and ``lastSyncedAt``.
  Here both happen in one pass, stamped with the time the pass began; the target is written
  last.
- The default target comes from Longhorn's default settings (the chart's
  ``defaultBackupStore``). Longhorn itself is installed by Flux, so after the datastore was lost
  the target exists again only once Flux runs (its ``flux-system`` Kustomization Ready, which the
  lab's controllers stand in for: they keep running through a meltdown) and Longhorn runs on a
  node.

- Both delete what the store no longer holds: ``cleanupBackupVolumeNotExistOnBackupTarget``
  (backup_target_controller.go) deletes a BackupVolume of the target whose volume is gone from
  the store, and the Backups it owns go with it (their ownerReferences); the backup volume
  controller deletes a Backup (labels ``backup-target``/``backup-volume``) whose cfg is gone,
  except one this cluster is taking (``spec.snapshotName`` set and not ``Completed``). Each is
  labelled ``longhorn.io/delete-custom-resource-only`` first, so the deletion leaves the store
  alone.

Unlike the real controllers, the store is read with drbot's own reader (adapters.backupstore),
not Longhorn's backupstore library.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters import backupstore
from adapters.s3 import ObjectStore
from lab import world
from lab.controllers.base import (
    R_KUSTOMIZATIONS,
    R_LH_BACKUPS,
    R_LH_BACKUPTARGETS,
    R_LH_BACKUPVOLUMES,
    R_LH_NODES,
    ControllerBase,
    condition,
)
from lab.kube_wire import now_iso
from lab.seed.flux import BOOTSTRAP_NAME

# types.GetLonghornLabelKey(types.DeleteCustomResourceOnly): delete the object, not the store's data
CR_ONLY = "longhorn.io/delete-custom-resource-only"


def backup_volume_name(volume: str) -> str:
    """v1.8+'s BackupVolume name: the volume and a short hash (with its target)."""
    return f"{volume}-{hashlib.sha256(volume.encode()).hexdigest()[:8]}"


def default_target() -> dict[str, Any]:
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "BackupTarget",
        "metadata": {"name": "default", "namespace": world.LONGHORN_NS},
        "spec": {"backupTargetURL": world.BACKUP_TARGET_URL, "credentialSecret": "longhorn-s3",
                 "pollInterval": "5m0s"},
    }


def _time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _rfc3339(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def _poll_seconds(spec: dict[str, Any]) -> float:
    text = str(spec.get("pollInterval") or "5m0s")
    total, number = 0.0, ""
    for char in text:
        if char.isdigit() or char == ".":
            number += char
            continue
        total += float(number or 0) * {"h": 3600, "m": 60, "s": 1}.get(char, 0)
        number = ""
    return total or 300.0


def sync_due(target: dict[str, Any], now: datetime, scale: float) -> bool:
    spec, status = target.get("spec") or {}, target.get("status") or {}
    synced = _time(str(status.get("lastSyncedAt") or ""))
    if synced is None:
        return True
    requested = _time(str(spec.get("syncRequestedAt") or ""))
    if requested is not None and requested > synced:
        return True
    return now - synced >= timedelta(seconds=_poll_seconds(spec) * scale)


class BackupTargetController(ControllerBase):
    """Longhorn's backup target and backup volume controllers, reduced to the pull."""

    longhorn_store: Callable[[], ObjectStore] | None = None
    poll_scale: float = 1.0

    async def backup_targets(self) -> None:
        if self.longhorn_store is None:
            return
        targets = self.kube.live(R_LH_BACKUPTARGETS)
        if not targets and self.kube.live(R_LH_NODES) and self.flux_runs():
            await self.create(R_LH_BACKUPTARGETS, world.LONGHORN_NS, default_target())
            self.state.record("longhorn: backup target default created from its settings")
            return
        now = datetime.now(UTC)
        for target in targets:
            if sync_due(target, now, self.poll_scale):
                await self.sync_target(target)

    def flux_runs(self) -> bool:
        sync = self.kube.current(R_KUSTOMIZATIONS, world.FLUX_NS, BOOTSTRAP_NAME)
        return sync is not None and condition(sync, "Ready").get("status") == "True"

    async def sync_target(self, target: dict[str, Any]) -> None:
        name = target["metadata"]["name"]
        synced = now_iso()  # Longhorn stamps a sync with the time it began
        assert self.longhorn_store is not None
        store = self.longhorn_store()
        try:
            stored = await asyncio.to_thread(_read_store, store)
        except Exception as exc:  # noqa: BLE001 (any store failure makes the target unavailable)
            await self.patch(R_LH_BACKUPTARGETS, world.LONGHORN_NS, name, {"status": {
                "available": False, "conditions": [{
                    "type": "Unavailable", "status": "True", "reason": "Unavailable",
                    "message": str(exc)[:200], "lastTransitionTime": now_iso()}]}})
            return
        have_bvs = {(bv.get("spec") or {}).get("volumeName") for bv in
                    self.kube.live(R_LH_BACKUPVOLUMES)}
        have_backups = {b["metadata"]["name"] for b in self.kube.live(R_LH_BACKUPS)}
        for volume, backups in stored:
            for backup in backups:
                if backup.name not in have_backups and not backup.in_progress:
                    await self.create(R_LH_BACKUPS, world.LONGHORN_NS,
                                      backup_object(name, volume, backup))
            body = backup_volume_object(name, volume, synced)
            if volume.name not in have_bvs:
                await self.create(R_LH_BACKUPVOLUMES, world.LONGHORN_NS, body)
            await self.patch(R_LH_BACKUPVOLUMES, world.LONGHORN_NS, body["metadata"]["name"],
                             {"status": body["status"]})
        await self.forget_gone(name, stored)
        await self.patch(R_LH_BACKUPTARGETS, world.LONGHORN_NS, name, {"status": {
            "available": True, "conditions": [], "lastSyncedAt": synced}})
        self.state.record(f"longhorn: backup target {name} synced {len(stored)} volume(s)")


    async def forget_gone(self, target: str, stored: list[tuple[
            backupstore.LonghornBackupVolume, list[backupstore.LonghornBackup]]]) -> None:
        """Delete the target's BackupVolumes and Backups whose store entries are gone."""
        in_store = {volume.name: {b.name for b in backups} for volume, backups in stored}
        for bv in self.kube.live(R_LH_BACKUPVOLUMES):
            if of_target(bv, target) and volume_of(bv) not in in_store:
                for backup in self.kube.live(R_LH_BACKUPS):
                    if of_target(backup, target) and volume_of(backup) == volume_of(bv):
                        await self.delete_cr_only(R_LH_BACKUPS, backup)
                await self.delete_cr_only(R_LH_BACKUPVOLUMES, bv)
        for backup in self.kube.live(R_LH_BACKUPS):
            names = in_store.get(volume_of(backup))
            if names is None or not of_target(backup, target) or taking(backup):
                continue
            if backup["metadata"]["name"] not in names:
                await self.delete_cr_only(R_LH_BACKUPS, backup)

    async def delete_cr_only(self, res: Any, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        await self.patch(res, world.LONGHORN_NS, name, {"metadata": {"labels": {CR_ONLY: "true"}}})
        await self.delete(res, world.LONGHORN_NS, name)
        self.state.record(f"longhorn: {obj['kind']} {name} deleted: gone from the backup store")


def of_target(obj: dict[str, Any], target: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    named = (obj.get("spec") or {}).get("backupTargetName") or labels.get("backup-target")
    return (named or "default") == target


def volume_of(obj: dict[str, Any]) -> str:
    labels = obj["metadata"].get("labels") or {}
    return str((obj.get("spec") or {}).get("volumeName") or labels.get("backup-volume")
               or (obj.get("status") or {}).get("volumeName") or "")


def taking(backup: dict[str, Any]) -> bool:
    """A backup this cluster is taking: the sync leaves it alone until it completes."""
    return bool((backup.get("spec") or {}).get("snapshotName")) and (
        (backup.get("status") or {}).get("state") != "Completed")


def _read_store(store: ObjectStore) -> list[tuple[backupstore.LonghornBackupVolume,
                                                  list[backupstore.LonghornBackup]]]:
    volumes = backupstore.longhorn_volumes(store)
    return [(v, backupstore.longhorn_backups(store, "", v.name)) for v in volumes]


def backup_volume_object(target: str, volume: backupstore.LonghornBackupVolume, synced: str
                         ) -> dict[str, Any]:
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "BackupVolume",
        "metadata": {"name": backup_volume_name(volume.name), "namespace": world.LONGHORN_NS,
                     "labels": {"backup-target": target, "backup-volume": volume.name}},
        "spec": {"volumeName": volume.name, "backupTargetName": target},
        "status": {"lastBackupName": volume.last_backup_name,
                   "lastBackupAt": _rfc3339(volume.last_backup_at), "size": str(volume.size),
                   "storageClassName": volume.storage_class, "lastSyncedAt": synced},
    }


def backup_object(target: str, volume: backupstore.LonghornBackupVolume,
                  backup: backupstore.LonghornBackup) -> dict[str, Any]:
    labels = dict(backup.labels)
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Backup",
        "metadata": {"name": backup.name, "namespace": world.LONGHORN_NS,
                     "labels": {"backup-volume": volume.name, "backup-target": target}},
        "spec": {"snapshotName": "", "labels": labels},
        "status": {
            "state": "Completed",
            "url": f"{world.BACKUP_TARGET_URL}?backup={backup.name}&volume={volume.name}",
            "volumeName": volume.name,
            "volumeSize": str(volume.size),  # volume.cfg's Size (backupstore inspect.go)
            "size": str(backup.size),
            "labels": labels,
            "backupCreatedAt": _rfc3339(backup.created),
            "snapshotCreatedAt": _rfc3339(backup.snapshot_created),
            "backupTargetName": target,
            "lastSyncedAt": now_iso(),
            "error": "",
        },
    }

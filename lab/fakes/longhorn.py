"""Longhorn's snapshot and backup handling, as a controller over the Kubernetes emulator.

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
- ``controller/backup_controller.go``: once the snapshot is ready the backup runs; at the end
  ``status`` holds the store's record: ``labels`` (the spec labels it was taken with), ``url``,
  ``volumeSize`` (the volume's size) and ``size`` (the data stored, smaller), or ``state: Error``.

The real webhook acts at admission; here it acts on the controller's next pass, before the
backup controller looks at the object, which is all a client can observe.
"""

from __future__ import annotations

from typing import Any

from adapters.kubernetes import resources as R
from lab.fakes.kube import Reactor, StandaloneKube, backup_url

NS = R.LONGHORN_NAMESPACE
ACCESS_MODE = "longhorn.io/volume-access-mode"
ATTACH_WAIT = ("failed to take snapshot because the volume engine {engine} is not running. "
               "Waiting for the volume to be attached")


class LonghornBackups(Reactor):
    """Longhorn's backup mutator and its snapshot and backup controllers.

    ``attach_passes``: passes a detached volume takes to attach for a snapshot. ``fail_backups``:
    the error every backup ends in (None: they complete). ``errors_seen`` records each Snapshot
    error set, so a test can show the transient one happened.
    """

    def __init__(self, server: StandaloneKube, *, attach_passes: int = 3,
                 fail_backups: str | None = None) -> None:
        super().__init__(self._pass)
        self.server = server
        self.attach_passes = attach_passes
        self.fail_backups = fail_backups
        self.errors_seen: list[str] = []
        self._attaching: dict[str, int] = {}

    def _pass(self) -> None:
        for snap in self.server.list(R.LH_SNAPSHOTS, NS):
            self._snapshot(snap)
        for backup in self.server.list(R.LH_BACKUPS, NS):
            self._backup(backup)

    def _volume(self, name: str) -> dict[str, Any] | None:
        found = [v for v in self.server.list(R.LH_VOLUMES, NS) if v["metadata"]["name"] == name]
        return found[0] if found else None

    def _snapshot(self, snap: dict[str, Any]) -> None:
        status, name = snap.get("status") or {}, snap["metadata"]["name"]
        if status.get("readyToUse") or not (snap.get("spec") or {}).get("createSnapshot"):
            return
        volume = self._volume(snap["spec"]["volume"])
        if volume is None:
            return
        if (volume.get("status") or {}).get("state") != "attached":
            passes = self._attaching.get(name, 0)
            if passes == 0:
                error = ATTACH_WAIT.format(engine=f"{volume['metadata']['name']}-e-0")
                self.errors_seen.append(error)
                self.server.patch(R.LH_SNAPSHOTS, name, {"status": {"error": error}}, NS)
            self._attaching[name] = passes + 1
            if passes + 1 < self.attach_passes:
                return
            self.server.patch(R.LH_VOLUMES, volume["metadata"]["name"],
                              {"status": {"state": "attached"}}, NS)
            return
        self.server.patch(R.LH_SNAPSHOTS, name, {"status": {
            "readyToUse": True, "error": "", "creationTime": "2026-01-05T00:00:00Z"}}, NS)

    def _mutate(self, backup: dict[str, Any]) -> dict[str, Any] | None:
        """The backup mutator's additions; None when the snapshot or volume is unknown."""
        snaps = [s for s in self.server.list(R.LH_SNAPSHOTS, NS)
                 if s["metadata"]["name"] == (backup.get("spec") or {}).get("snapshotName")]
        if not snaps:
            return None
        volume = self._volume(snaps[0]["spec"]["volume"])
        if volume is None:
            return None
        spec_labels = dict((backup.get("spec") or {}).get("labels") or {})
        spec_labels.setdefault(ACCESS_MODE, (volume.get("spec") or {}).get("accessMode") or "rwo")
        labels = dict(backup["metadata"].get("labels") or {})
        labels.setdefault("backup-volume", volume["metadata"]["name"])
        labels.setdefault("backup-target",
                          (volume.get("spec") or {}).get("backupTargetName") or "default")
        return {"metadata": {"labels": labels}, "spec": {"labels": spec_labels}}

    def _backup(self, backup: dict[str, Any]) -> None:
        name, status = backup["metadata"]["name"], backup.get("status") or {}
        if status.get("state") in ("Completed", "Error"):
            return
        if not status.get("state"):
            change = self._mutate(backup)
            if change is None:
                return
            change["status"] = {"state": "Pending"}
            self.server.patch(R.LH_BACKUPS, name, change, NS)
            return
        snap_name = backup["spec"]["snapshotName"]
        snaps = [s for s in self.server.list(R.LH_SNAPSHOTS, NS)
                 if s["metadata"]["name"] == snap_name]
        if not snaps or not (snaps[0].get("status") or {}).get("readyToUse"):
            return
        volume_name = backup["metadata"]["labels"]["backup-volume"]
        volume = self._volume(volume_name) or {}
        if self.fail_backups is not None:
            self.server.patch(R.LH_BACKUPS, name, {"status": {
                "state": "Error", "error": self.fail_backups}}, NS)
            return
        size = str((volume.get("spec") or {}).get("size") or "0")
        self.server.patch(R.LH_BACKUPS, name, {"status": {
            "state": "Completed", "url": backup_url(name, volume_name),
            "volumeName": volume_name, "volumeSize": size, "size": str(int(size) // 8),
            "labels": dict(backup["spec"].get("labels") or {}),
            "backupTargetName": backup["metadata"]["labels"]["backup-target"],
            "snapshotName": snap_name, "backupCreatedAt": "2026-01-05T00:01:00Z",
            "snapshotCreatedAt": "2026-01-05T00:00:00Z"}}, NS)

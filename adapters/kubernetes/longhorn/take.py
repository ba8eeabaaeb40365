"""Taking a Longhorn backup now: a Snapshot CR, then a Backup CR of it, labelled as Longhorn's own
API labels the backups it takes, so a restore knows which PVC the data belongs to.

What this follows in longhorn-manager:
- ``api/snapshot.go`` (SnapshotBackup): the API adds the volume's ``status.kubernetesStatus`` as
  JSON under the ``KubernetesStatus`` label and uses the volume's own ``spec.backupTargetName``;
  a Backup CR created directly gets neither, and then records no PVC (recurring jobs go through
  that API). The backup controller copies the labels into the backup's cfg in the store, and from
  there into ``status.labels``.
- ``controller/snapshot_controller.go``: a Snapshot of a detached volume makes Longhorn attach
  the volume; meanwhile it sets ``status.error`` to "... engine ... is not running. Waiting for
  the volume to be attached" (or "snapshot creation delayed" during an engine upgrade) and clears
  it once the snapshot is ready. Those are not failures.
- Snapshots count against the ``snapshot-max-count`` setting (250 by default); drbot keeps only
  its newest one per volume (the next incremental backup compares against it) and removes its
  own snapshot when the backup fails.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from adapters.errors import AdapterError, Cancelled, Conflict, NotFound
from adapters.kubernetes._wait import wait_for
from adapters.kubernetes.client import Kube
from adapters.kubernetes.longhorn._objects import NS, name_of
from adapters.kubernetes.longhorn.backups import K8S_STATUS_LABEL, Backup, get_backup
from adapters.kubernetes.resources import LH_BACKUPS, LH_SNAPSHOTS, LH_VOLUMES
from adapters.progress import Hooks, Progress

CREATED_BY = "created-by"
DRBOT = "drbot"
# Snapshot errors Longhorn sets while it is still working towards the snapshot.
TRANSIENT_SNAPSHOT_ERRORS = ("Waiting for the volume to be attached",
                             "snapshot creation delayed")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def new_backup_name(volume: str) -> str:
    """A fresh name for the Snapshot and Backup of ``volume`` that trigger_backup creates."""
    return f"drbot-{volume}-{_stamp()}"[:63].rstrip("-")


def _create_once(kube: Kube, res: Any, body: dict[str, Any]) -> None:
    """Create, or find it created already (by an earlier attempt under the same name)."""
    with contextlib.suppress(Conflict):
        kube.create_object(res, body)


def backup_labels(volume_obj: dict[str, Any]) -> dict[str, str]:
    """The labels Longhorn's API puts on a backup of this volume (plus drbot's own mark)."""
    labels = {CREATED_BY: DRBOT}
    k8s = (volume_obj.get("status") or {}).get("kubernetesStatus") or {}
    if any(k8s.values()):
        labels[K8S_STATUS_LABEL] = json.dumps(k8s, separators=(",", ":"))
    return labels


def volume_target(volume_obj: dict[str, Any]) -> str:
    """The volume's own backup target (Longhorn v1.8+), else ``default``."""
    return str((volume_obj.get("spec") or {}).get("backupTargetName") or "default")


def _read_volume(kube: Kube, volume: str) -> dict[str, Any]:
    try:
        return kube.get_object(LH_VOLUMES, volume, NS)
    except NotFound:
        raise NotFound(f"Longhorn volume {volume} does not exist.") from None


def transient(error: str) -> bool:
    return any(marker in error for marker in TRANSIENT_SNAPSHOT_ERRORS)


def trigger_backup(
    kube: Kube,
    volume: str,
    *,
    wait: bool = True,
    timeout: float = 1800.0,
    poll: float = 5.0,
    hooks: Hooks | None = None,
    target: str | None = None,
    name: str = "",
) -> Backup:
    """Back up ``volume`` now: a Snapshot CR, then a Backup CR of that snapshot.

    With ``wait`` the call returns once the Backup is Completed. A snapshot error, a Backup in
    Error or a timeout raises AdapterError/TimedOut and removes drbot's snapshot. Given a
    ``name`` (new_backup_name) that an earlier call created already, it goes on with those
    objects instead of starting a second backup.
    """
    hooks = hooks or Hooks()
    vol = _read_volume(kube, volume)
    name = name or new_backup_name(volume)
    _create_once(kube, LH_SNAPSHOTS, {
        "metadata": {"name": name, "namespace": NS, "labels": {"longhornvolume": volume}},
        "spec": {"volume": volume, "createSnapshot": True, "labels": {CREATED_BY: DRBOT}},
    })
    hooks.report(Progress(f"Snapshot {name} of volume {volume} requested", target=volume,
                          task="backup", status="snapshot"))
    try:
        _wait_snapshot(kube, volume, name, timeout, poll, hooks)
        _create_once(kube, LH_BACKUPS, {
            "metadata": {"name": name, "namespace": NS,
                         "labels": {"backup-volume": volume,
                                    "backup-target": target or volume_target(vol)}},
            "spec": {"snapshotName": name, "labels": backup_labels(vol)},
        })
        hooks.report(Progress(f"Backup {name} of volume {volume} started", target=volume,
                              task="backup", status="started"))
        if not wait:
            return get_backup(kube, name)
        backup = _wait_backup(kube, volume, name, timeout, poll, hooks)
    except AdapterError as exc:
        if not isinstance(exc, Cancelled):
            _remove_snapshot(kube, name)
        raise
    hooks.report(Progress(f"Backup {name} of volume {volume} completed", target=volume,
                          task="backup", status="done"))
    prune_own_snapshots(kube, volume, keep=name)
    return backup


def _wait_snapshot(kube: Kube, volume: str, name: str, timeout: float, poll: float,
                   hooks: Hooks) -> None:
    said: set[str] = set()

    def ready() -> bool | None:
        status = kube.get_object(LH_SNAPSHOTS, name, NS).get("status") or {}
        error = str(status.get("error") or "")
        if status.get("readyToUse"):
            return True
        if error and not transient(error):
            raise AdapterError(f"Longhorn could not snapshot volume {volume}: {error}")
        if error and error not in said:
            said.add(error)
            hooks.report(Progress(f"Longhorn is attaching volume {volume} for the snapshot",
                                  target=volume, task="backup", status="pending"))
        return None

    wait_for(
        ready, timeout=timeout, poll=poll, hooks=hooks,
        timeout_message=lambda err: f"The snapshot {name} of volume {volume} was not ready "
        f"within {timeout:.0f}s; is the volume healthy and can Longhorn attach it? (snapshot "
        "removed)",
        cancel_message=f"Stopped waiting for snapshot {name} of volume {volume}.",
    )


def _wait_backup(kube: Kube, volume: str, name: str, timeout: float, poll: float,
                 hooks: Hooks) -> Backup:
    def completed() -> Backup | None:
        backup = get_backup(kube, name)
        if backup.state == "Error":
            raise AdapterError(f"Longhorn backup {name} of volume {volume} failed: "
                               f"{backup.error or 'no error given'} (snapshot removed)")
        return backup if backup.state == "Completed" else None

    return wait_for(
        completed, timeout=timeout, poll=poll, hooks=hooks,
        timeout_message=lambda err: f"Longhorn backup {name} of volume {volume} did not "
        f"complete within {timeout:.0f}s; check the backup target (snapshot removed).",
        cancel_message=f"Stopped waiting for backup {name}; Longhorn goes on with it.",
    )


def _remove_snapshot(kube: Kube, name: str) -> None:
    with contextlib.suppress(NotFound):
        kube.delete_object(LH_SNAPSHOTS, name, NS)


def prune_own_snapshots(kube: Kube, volume: str, keep: str) -> list[str]:
    """Remove drbot's older snapshots of ``volume`` (never one another tool made)."""
    removed = []
    for snap in kube.list_objects(LH_SNAPSHOTS, NS):
        spec = snap.get("spec") or {}
        name = name_of(snap)
        if (spec.get("volume") != volume or name == keep
                or (spec.get("labels") or {}).get(CREATED_BY) != DRBOT):
            continue
        _remove_snapshot(kube, name)
        removed.append(name)
    return removed

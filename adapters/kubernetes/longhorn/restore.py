"""Longhorn restore: a backup into a new Volume, PersistentVolume and PersistentVolumeClaim.

A restore goes the direct way: a Volume with ``spec.fromBackup`` set to the Backup's ``status.url``
(read from a Backup that exists, never taken from text), then a static PersistentVolume and a
PersistentVolumeClaim.

The PVC is built as the backup recorded it, never from defaults: a PVC's spec cannot be changed
after creation, so a class or access mode that differs from Git makes Flux fail on it (and with
``force: true`` Flux deletes and recreates the PVC, empty). The storage class is the BackupVolume's
``status.storageClassName`` (longhorn-manager controller/backup_volume_controller.go copies it
from volume.cfg), the access mode the backup's ``longhorn.io/volume-access-mode`` label (set by
the backup mutating webhook, webhook/resources/backup/mutator.go), the size the backup's
``status.volumeSize`` (``status.size`` is the data stored, not the volume's size).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from adapters.errors import AdapterError, Conflict, NotFound, Refused
from adapters.kubernetes._wait import wait_for
from adapters.kubernetes.client import Kube
from adapters.kubernetes.longhorn._objects import NS, RESTORE_STATUS, condition, engine_progress
from adapters.kubernetes.longhorn.backups import Backup, get_backup, list_backup_volumes
from adapters.kubernetes.resources import LH_VOLUMES
from adapters.progress import Hooks, Progress

CSI_DRIVER = "driver.longhorn.io"
# Longhorn's volume access modes and the PVC access modes they stand for.
PVC_ACCESS_MODES = {"rwo": ("ReadWriteOnce",), "rwop": ("ReadWriteOncePod",),
                    "rwx": ("ReadWriteMany",)}


@dataclass(frozen=True)
class PvcShape:
    """What a restored PVC's immutable spec must be: as it was when the backup was taken."""

    storage_class: str
    access_modes: tuple[str, ...]
    size: str


def recorded_shape(kube: Kube, backup: Backup) -> PvcShape:
    """The PVC spec ``backup`` recorded; Refused, naming what is unknown, when it is not known."""
    size = backup.volume_size
    classes = {bv.storage_class for bv in list_backup_volumes(kube)
               if bv.volume == backup.volume and (not backup.target or bv.target == backup.target)}
    classes.discard("")
    missing = []
    if not size.isdigit() or int(size) <= 0:
        missing.append("the volume size (status.volumeSize)")
    if len(classes) != 1:
        missing.append("the storage class (BackupVolume status.storageClassName)")
    if backup.access_mode not in PVC_ACCESS_MODES:
        missing.append("the access mode (label longhorn.io/volume-access-mode)")
    if missing:
        raise Refused(f"Longhorn backup {backup.name} of volume {backup.volume} does not record "
                      + ", ".join(missing) + ": a PVC built from defaults may not match Git and "
                      "cannot be changed later. Restore it with the PVC's spec from Git instead "
                      "(create the PVC by hand, bound to a volume restored in the Longhorn UI).")
    return PvcShape(classes.pop(), PVC_ACCESS_MODES[backup.access_mode], size)


def longhorn_access_mode(access_modes: tuple[str, ...]) -> str:
    if "ReadWriteMany" in access_modes:
        return "rwx"
    return "rwop" if "ReadWriteOncePod" in access_modes else "rwo"


@dataclass
class RestoredVolume:
    volume: str
    pv: str
    pvc: str
    namespace: str
    backup: str
    size: str


class RestoreState(StrEnum):
    """Where one restore stands, read from its Longhorn Volume."""

    PENDING = "pending"  # created; Longhorn has not begun (or holds it at its per-node limit)
    RESTORING = "restoring"
    FINISHING = "finishing"  # the data is in; not detached yet (or attached since, in use)
    RESTORED = "restored"  # done and detached: ready for its PV and PVC
    FAILED = "failed"

    @property
    def busy(self) -> bool:
        """Counts against Longhorn's per-node restore limit."""
        return self in (RestoreState.PENDING, RestoreState.RESTORING)


@dataclass(frozen=True)
class LiveRestore:
    """A Volume created from a backup, as Longhorn reports it now."""

    volume: str
    from_backup: str
    state: RestoreState
    node: str
    message: str = ""


def restore_state(obj: dict[str, Any]) -> LiveRestore:
    """The state of a restore volume: Longhorn started it (``restoreInitiated`` or a Restore
    condition), cleared ``restoreRequired`` and detached it when done; a ``RestoreFailure``
    condition is final (longhorn-manager ``controller/volume_controller.go``)."""
    status = obj.get("status") or {}
    restore = condition(obj, "Restore")
    name = str(obj.get("metadata", {}).get("name", ""))
    node = str(status.get("currentNodeID") or status.get("ownerID") or "")
    url = str((obj.get("spec") or {}).get("fromBackup") or "")
    if restore.get("reason") == "RestoreFailure":
        return LiveRestore(name, url, RestoreState.FAILED, node,
                           str(restore.get("message") or "no message"))
    started = bool(status.get("restoreInitiated")) or bool(restore)
    if not started:
        return LiveRestore(name, url, RestoreState.PENDING, node)
    if status.get("restoreRequired") or restore.get("status") == "True":
        return LiveRestore(name, url, RestoreState.RESTORING, node)
    if status.get("state") == "detached":
        return LiveRestore(name, url, RestoreState.RESTORED, node)
    return LiveRestore(name, url, RestoreState.FINISHING, node)


def list_restores(kube: Kube) -> dict[str, LiveRestore]:
    """Every Volume created from a backup, by name (one LIST, whatever the number of restores)."""
    return {r.volume: r for r in (restore_state(o) for o in kube.list_objects(LH_VOLUMES, NS))
            if r.from_backup}


def restore_progress(kube: Kube) -> dict[str, int]:
    """Percent restored per volume, where Longhorn reports it (Engine ``status.restoreStatus``;
    see ``engine_progress``)."""
    return engine_progress(kube, RESTORE_STATUS)


def _restore_done(obj: dict[str, Any], name: str) -> bool:
    """The restore finished; a failed one raises."""
    live = restore_state(obj)
    if live.state is RestoreState.FAILED:
        raise AdapterError(
            f"Longhorn failed to restore volume {name}: {live.message}. "
            "Delete the volume and try another backup."
        )
    return live.state is RestoreState.RESTORED


def restored_volume_name(namespace: str, pvc: str) -> str:
    """The Volume (and PV) a restore into ``namespace/pvc`` uses: stable, so a retry finds it."""
    return f"restore-{namespace}-{pvc}"[:63].rstrip("-")


_restored_volume_name = restored_volume_name


def start_restore(kube: Kube, backup: Backup, pvc_name: str, namespace: str, shape: PvcShape,
                  *, volume_name: str | None = None, replicas: int = 3) -> str:
    """Create the Volume that restores ``backup`` for PVC ``namespace/pvc_name`` (or find the one
    an earlier run created); return its name. Refuses a PVC that exists for something else."""
    if backup.state != "Completed" or not backup.url:
        raise Refused(
            f"Longhorn backup {backup.name} is {backup.state or 'not finished'}"
            f"{': ' + backup.error if backup.error else ''}; pick a Completed backup."
        )
    if not shape.size.isdigit() or int(shape.size) <= 0:
        raise Refused(f"Longhorn backup {backup.name} does not record the volume size.")
    volume = volume_name or restored_volume_name(namespace, pvc_name)
    _refuse_existing_pvc(kube, pvc_name, namespace, volume)
    _create_restore_volume(kube, volume, backup, shape.size, replicas,
                           longhorn_access_mode(shape.access_modes))
    return volume


def finish_restore(kube: Kube, volume: str, backup: Backup, pvc_name: str, namespace: str,
                   shape: PvcShape, *, fs_type: str = "ext4", replicas: int = 3) -> RestoredVolume:
    """The static PV and the PVC of a restored volume (both idempotent), shaped as ``shape``."""
    _create_pv(kube, volume, shape.size, pvc_name, namespace, shape.storage_class,
               shape.access_modes, fs_type, replicas)
    _create_pvc(kube, volume, shape.size, pvc_name, namespace, shape.storage_class,
                shape.access_modes)
    return RestoredVolume(volume, volume, pvc_name, namespace, backup.name, shape.size)


def pvc_bound_to(kube: Kube, pvc: str, namespace: str, volume: str) -> bool:
    """PVC ``namespace/pvc`` exists and names ``volume``: that restore is finished."""
    try:
        existing = kube.call(kube.core.read_namespaced_persistent_volume_claim, pvc, namespace)
    except NotFound:
        return False
    return (existing.spec.volume_name if existing.spec else None) == volume


def discard_failed_restore(kube: Kube, volume: str) -> bool:
    """Delete a Volume whose restore failed, before any PV names it (it holds no data: it was
    created only to restore into); True if deleted. Longhorn cannot restart a failed restore in
    place: its advice is to delete the volume and restore again."""
    try:
        obj = kube.get_object(LH_VOLUMES, volume, NS)
    except NotFound:
        return False
    if restore_state(obj).state is not RestoreState.FAILED:
        return False
    try:
        kube.call(kube.core.read_persistent_volume, volume)
        return False  # something binds it: leave it to a person
    except NotFound:
        pass
    kube.delete_object(LH_VOLUMES, volume, NS)
    return True


def restore_backup(
    kube: Kube,
    backup_name: str,
    pvc_name: str,
    namespace: str,
    hooks: Hooks | None = None,
    timeout: float = 3600.0,
    *,
    volume_name: str | None = None,
    shape: PvcShape | None = None,
    fs_type: str = "ext4",
    replicas: int = 3,
    poll: float = 5.0,
) -> RestoredVolume:
    """Restore Longhorn backup ``backup_name`` into a new PVC ``namespace/pvc_name``.

    Creates a Volume with ``fromBackup`` = the Backup's ``status.url``, waits for the restore,
    then a static PersistentVolume (as Longhorn builds it) bound to a new PVC. The PVC's spec is
    ``shape`` (default: what the backup recorded; Refused when unknown). A retry after a partial
    run picks up the objects it made before; a PVC that exists already is refused.
    """
    hooks = hooks or Hooks()
    backup = get_backup(kube, backup_name)
    shape = shape or recorded_shape(kube, backup)
    volume = start_restore(kube, backup, pvc_name, namespace, shape, volume_name=volume_name,
                           replicas=replicas)
    target = f"{namespace}/{pvc_name}"
    hooks.report(Progress(f"Restoring backup {backup_name} into {target}",
                          target=target, task="restore", status="restoring"))
    shown: list[int] = []

    def restored() -> bool | None:
        if _restore_done(kube.get_object(LH_VOLUMES, volume, NS), volume):
            return True
        percent = restore_progress(kube).get(volume)
        if percent is not None and percent not in shown:  # only when it moved
            shown.append(percent)
            hooks.report(Progress(f"Restoring backup {backup_name} into {target}: {percent}%",
                                  target=target, task="restore", status="restoring"))
        return None

    wait_for(
        restored, timeout=timeout, poll=poll, hooks=hooks,
        timeout_message=lambda err: f"Longhorn volume {volume} was still restoring from backup "
        f"{backup_name} after {timeout:.0f}s; check the volume in the Longhorn UI.",
        cancel_message=f"Stopped waiting for the restore of {backup_name}; Longhorn volume "
        f"{volume} is left as it is (delete it to undo).",
    )
    done = finish_restore(kube, volume, backup, pvc_name, namespace, shape, fs_type=fs_type,
                          replicas=replicas)
    hooks.report(Progress(f"Restored backup {backup_name} into PVC {target}", target=target,
                          task="restore", status="done"))
    return done


def _refuse_existing_pvc(kube: Kube, pvc: str, namespace: str, volume: str) -> None:
    try:
        existing = kube.call(kube.core.read_namespaced_persistent_volume_claim, pvc, namespace)
    except NotFound:
        return
    if (existing.spec.volume_name if existing.spec else None) == volume:
        return  # ours, from an earlier run
    raise Conflict(
        f"PVC {namespace}/{pvc} already exists; restore into another name (or use --replace)."
    )


def _create_restore_volume(
    kube: Kube, volume: str, backup: Backup, size: str, replicas: int, access_mode: str
) -> None:
    try:
        existing = kube.get_object(LH_VOLUMES, volume, NS)
    except NotFound:
        existing = None
    if existing is not None:
        if (existing.get("spec") or {}).get("fromBackup") != backup.url:
            raise Conflict(
                f"Longhorn volume {volume} already exists and was not restored from backup "
                f"{backup.name}; choose another PVC name or delete that volume."
            )
        return
    kube.create_object(LH_VOLUMES, {
        "metadata": {"name": volume, "namespace": NS},
        "spec": {
            "fromBackup": backup.url,
            "size": size,
            "numberOfReplicas": replicas,
            "frontend": "blockdev",
            "accessMode": access_mode,
            "staleReplicaTimeout": 30,
        },
    })


def _create_pv(
    kube: Kube, volume: str, size: str, pvc: str, namespace: str, storage_class: str,
    access_modes: tuple[str, ...], fs_type: str, replicas: int,
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume},
        "spec": {
            "capacity": {"storage": size},
            "volumeMode": "Filesystem",
            "accessModes": list(access_modes),
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": storage_class,
            "claimRef": {"namespace": namespace, "name": pvc},
            "csi": {
                "driver": CSI_DRIVER,
                "volumeHandle": volume,
                "fsType": fs_type,
                "volumeAttributes": {
                    "numberOfReplicas": str(replicas),
                    "staleReplicaTimeout": "30",
                },
            },
        },
    }
    try:
        kube.call(kube.core.create_persistent_volume, body)
    except Conflict:
        existing = kube.call(kube.core.read_persistent_volume, volume)
        csi = existing.spec.csi if existing.spec else None
        if not csi or csi.volume_handle != volume:
            raise Conflict(
                f"PersistentVolume {volume} already exists for something else; delete it or "
                "restore into another name."
            ) from None


def _create_pvc(
    kube: Kube, volume: str, size: str, pvc: str, namespace: str, storage_class: str,
    access_modes: tuple[str, ...],
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": pvc, "namespace": namespace},
        "spec": {
            "accessModes": list(access_modes),
            "resources": {"requests": {"storage": size}},
            "storageClassName": storage_class,
            "volumeName": volume,
        },
    }
    try:
        kube.call(kube.core.create_namespaced_persistent_volume_claim, namespace, body)
    except Conflict:
        _refuse_existing_pvc(kube, pvc, namespace, volume)

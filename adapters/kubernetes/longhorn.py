"""Longhorn (longhorn.io/v1beta2, namespace longhorn-system): volumes, replicas, nodes, backups.

Replica health follows Longhorn's own test (``datastore.IsAvailableHealthyReplica``): no
deletionTimestamp, ``spec.failedAt`` empty and ``spec.healthyAt`` set. A restore goes the direct
way: a Volume with ``spec.fromBackup`` set to the Backup's ``status.url`` (read from a Backup that
exists, never taken from text), then a static PersistentVolume and a PersistentVolumeClaim.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.errors import AdapterError, Conflict, NotFound, Refused
from adapters.kubernetes._wait import wait_for
from adapters.kubernetes.client import Kube
from adapters.kubernetes.resources import (
    LH_BACKUPS,
    LH_BACKUPTARGETS,
    LH_BACKUPVOLUMES,
    LH_ENGINES,
    LH_NODES,
    LH_REPLICAS,
    LH_SNAPSHOTS,
    LH_VOLUMES,
    LONGHORN_NAMESPACE,
    Resource,
)
from adapters.progress import Hooks, Progress

NS = LONGHORN_NAMESPACE
CSI_DRIVER = "driver.longhorn.io"


@dataclass
class Replica:
    name: str
    volume: str
    node: str
    healthy: bool
    state: str  # status.currentState
    failed_at: str


@dataclass
class Volume:
    name: str
    state: str
    robustness: str
    size: str
    number_of_replicas: int
    node: str  # status.currentNodeID (where it is attached)
    replicas: list[Replica] = field(default_factory=list)
    pvc: str = ""
    pvc_namespace: str = ""
    pv: str = ""
    last_backup: str = ""
    last_backup_at: str = ""
    restore_required: bool = False
    from_backup: str = ""

    @property
    def healthy_replicas(self) -> list[Replica]:
        return [r for r in self.replicas if r.healthy]


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


@dataclass
class NodeCleanup:
    node: str
    deleted_replicas: list[str]
    node_deleted: bool


@dataclass
class RestoredVolume:
    volume: str
    pv: str
    pvc: str
    namespace: str
    backup: str
    size: str


# ---- reading ------------------------------------------------------------------------------


def _name(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return {}


def _to_replica(obj: dict[str, Any]) -> Replica:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    meta = obj.get("metadata") or {}
    healthy = (
        not meta.get("deletionTimestamp")
        and not spec.get("failedAt")
        and bool(spec.get("healthyAt"))
    )
    volume = spec.get("volumeName") or (meta.get("labels") or {}).get("longhornvolume") or ""
    return Replica(
        name=_name(obj),
        volume=str(volume),
        node=str(spec.get("nodeID") or ""),
        healthy=bool(healthy),
        state=str(status.get("currentState") or ""),
        failed_at=str(spec.get("failedAt") or ""),
    )


def _to_volume(obj: dict[str, Any], replicas: list[Replica]) -> Volume:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    k8s = status.get("kubernetesStatus") or {}
    return Volume(
        name=_name(obj),
        state=str(status.get("state") or ""),
        robustness=str(status.get("robustness") or ""),
        size=str(spec.get("size") or ""),
        number_of_replicas=int(spec.get("numberOfReplicas") or 0),
        node=str(status.get("currentNodeID") or ""),
        replicas=sorted(replicas, key=lambda r: r.name),
        pvc=str(k8s.get("pvcName") or ""),
        pvc_namespace=str(k8s.get("namespace") or ""),
        pv=str(k8s.get("pvName") or ""),
        last_backup=str(status.get("lastBackup") or ""),
        last_backup_at=str(status.get("lastBackupAt") or ""),
        restore_required=bool(status.get("restoreRequired")),
        from_backup=str(spec.get("fromBackup") or ""),
    )


def list_replicas(kube: Kube, volume: str | None = None) -> list[Replica]:
    replicas = [_to_replica(o) for o in kube.list_objects(LH_REPLICAS, NS)]
    return [r for r in replicas if volume is None or r.volume == volume]


def list_volumes(kube: Kube) -> list[Volume]:
    """Every Longhorn volume with its replicas, sorted by name."""
    by_volume: dict[str, list[Replica]] = {}
    for replica in list_replicas(kube):
        by_volume.setdefault(replica.volume, []).append(replica)
    objs = kube.list_objects(LH_VOLUMES, NS)
    volumes = [_to_volume(o, by_volume.get(_name(o), [])) for o in objs]
    return sorted(volumes, key=lambda v: v.name)


def get_volume(kube: Kube, name: str) -> Volume:
    try:
        obj = kube.get_object(LH_VOLUMES, name, NS)
    except NotFound:
        raise NotFound(f"Longhorn volume {name} does not exist.") from None
    return _to_volume(obj, list_replicas(kube, name))


def volumes_losing_last_replica(kube: Kube, node: str) -> list[str]:
    """Volumes with a replica on ``node`` and no healthy replica on any other node.

    Removing ``node`` would lose their last good copy: the preflight refuses on these.
    """
    losing = []
    for volume in list_volumes(kube):
        here = [r for r in volume.replicas if r.node == node]
        elsewhere = [r for r in volume.healthy_replicas if r.node != node]
        if here and not elsewhere:
            losing.append(volume.name)
    return losing


# ---- dead node cleanup --------------------------------------------------------------------


def clean_dead_node(
    kube: Kube,
    node: str,
    hooks: Hooks | None = None,
    *,
    timeout: float = 120.0,
    poll: float = 2.0,
) -> NodeCleanup:
    """Remove what a dead node leaves in Longhorn, so its rebuilt namesake can schedule again.

    Deletes the node's replicas whose volume has a healthy copy elsewhere, sets
    ``spec.allowScheduling=false`` on the Longhorn Node and deletes it (its admission webhook
    allows that only without replicas or engines left on the node). Refuses before changing
    anything when a replica there is the last copy of a volume.
    """
    hooks = hooks or Hooks()
    losing = volumes_losing_last_replica(kube, node)
    if losing:
        raise Refused(
            f"Node {node} holds the last copy of Longhorn volume(s) {', '.join(losing)}; "
            "cleaning it up would lose their data. Restore them from backup or bring the node "
            "back first."
        )
    doomed = [r for r in list_replicas(kube) if r.node == node]
    for replica in doomed:
        try:
            kube.delete_object(LH_REPLICAS, replica.name, NS)
        except NotFound:
            continue
        hooks.report(Progress(f"Deleted replica {replica.name} of volume {replica.volume}",
                              target=replica.volume, host=node, task="longhorn-cleanup",
                              status="deleted"))
    _wait_gone(kube, LH_REPLICAS, {r.name for r in doomed}, node, timeout, poll, hooks)
    try:
        kube.patch_object(LH_NODES, node, {"spec": {"allowScheduling": False}}, NS)
    except NotFound:
        hooks.report(Progress(f"Longhorn node {node} is already gone", target=node,
                              task="longhorn-cleanup", status="done"))
        return NodeCleanup(node, [r.name for r in doomed], node_deleted=False)
    engines = [
        _name(e) for e in kube.list_objects(LH_ENGINES, NS)
        if (e.get("spec") or {}).get("nodeID") == node
    ]
    if engines:
        raise Conflict(
            f"Longhorn still has engine(s) {', '.join(engines)} on node {node}, so its Node "
            "object cannot be deleted yet; attach those volumes on another node, then retry."
        )
    try:
        kube.delete_object(LH_NODES, node, NS)
    except NotFound:
        pass
    except AdapterError as exc:
        raise AdapterError(
            f"Longhorn refused to delete its Node {node}: {exc}. Its Ready condition must be "
            "False (KubernetesNodeGone/ManagerPodMissing): delete the Kubernetes Node first."
        ) from None
    hooks.report(Progress(f"Deleted Longhorn node {node}", target=node,
                          task="longhorn-cleanup", status="done"))
    return NodeCleanup(node, [r.name for r in doomed], node_deleted=True)


def _wait_gone(
    kube: Kube, res: Resource, names: set[str], node: str, timeout: float, poll: float,
    hooks: Hooks,
) -> None:
    if not names:
        return

    def gone() -> bool | None:
        left = names & {_name(o) for o in kube.list_objects(res, NS)}
        return True if not left else None

    wait_for(
        gone, timeout=timeout, poll=poll, hooks=hooks,
        timeout_message=lambda err: (
            f"Longhorn {res.plural} of node {node} were deleted but are still there after "
            f"{timeout:.0f}s: {', '.join(sorted(names))}. Check longhorn-manager's logs."
        ),
        cancel_message=f"Stopped waiting for Longhorn to remove the replicas of node {node}.",
    )


# ---- backups ------------------------------------------------------------------------------


def _to_backup(obj: dict[str, Any]) -> Backup:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    recorded = (status.get("labels") or spec.get("labels") or {}).get("KubernetesStatus")
    try:
        k8s = json.loads(recorded) if recorded else {}
    except (TypeError, ValueError):
        k8s = {}
    return Backup(
        name=_name(obj),
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
    volume = spec.get("volumeName") or labels.get("backup-volume") or _name(obj)
    return BackupVolume(
        name=_name(obj),
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
    unavailable = _condition(obj, "Unavailable")
    return BackupTarget(
        name=_name(obj),
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


def trigger_backup(
    kube: Kube,
    volume: str,
    *,
    wait: bool = True,
    timeout: float = 1800.0,
    poll: float = 5.0,
    hooks: Hooks | None = None,
    target: str = "default",
) -> Backup:
    """Back up ``volume`` now: a Snapshot CR, then a Backup CR of that snapshot.

    With ``wait`` the call returns once the Backup is Completed (AdapterError on Error).
    """
    hooks = hooks or Hooks()
    get_volume(kube, volume)
    name = f"drbot-{volume}-{_stamp()}"[:63].rstrip("-")
    kube.create_object(LH_SNAPSHOTS, {
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
    kube.create_object(LH_BACKUPS, {
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


# ---- restore ------------------------------------------------------------------------------


def _restore_done(obj: dict[str, Any], name: str) -> bool:
    """The restore finished: Longhorn started it, cleared restoreRequired and detached it."""
    status = obj.get("status") or {}
    restore = _condition(obj, "Restore")
    if restore.get("reason") == "RestoreFailure":
        raise AdapterError(
            f"Longhorn failed to restore volume {name}: {restore.get('message') or 'no message'}. "
            "Delete the volume and try another backup."
        )
    started = bool(status.get("restoreInitiated")) or bool(restore)
    return (
        started
        and not status.get("restoreRequired")
        and restore.get("status") != "True"
        and status.get("state") == "detached"
    )


def _restored_volume_name(namespace: str, pvc: str) -> str:
    return f"restore-{namespace}-{pvc}"[:63].rstrip("-")


def restore_backup(
    kube: Kube,
    backup_name: str,
    pvc_name: str,
    namespace: str,
    hooks: Hooks | None = None,
    timeout: float = 3600.0,
    *,
    volume_name: str | None = None,
    storage_class: str = "longhorn",
    access_modes: tuple[str, ...] = ("ReadWriteOnce",),
    fs_type: str = "ext4",
    replicas: int = 3,
    poll: float = 5.0,
) -> RestoredVolume:
    """Restore Longhorn backup ``backup_name`` into a new PVC ``namespace/pvc_name``.

    Creates a Volume with ``fromBackup`` = the Backup's ``status.url``, waits for the restore,
    then a static PersistentVolume (as Longhorn builds it) bound to a new PVC. A retry after a
    partial run picks up the objects it made before; a PVC that exists already is refused.
    """
    hooks = hooks or Hooks()
    backup = get_backup(kube, backup_name)
    if backup.state != "Completed" or not backup.url:
        raise Refused(
            f"Longhorn backup {backup_name} is {backup.state or 'not finished'}"
            f"{': ' + backup.error if backup.error else ''}; pick a Completed backup."
        )
    size = backup.volume_size or backup.size
    if not size or not size.isdigit() or int(size) <= 0:
        raise AdapterError(f"Longhorn backup {backup_name} does not record the volume size.")
    volume = volume_name or _restored_volume_name(namespace, pvc_name)
    _refuse_existing_pvc(kube, pvc_name, namespace, volume)
    target = f"{namespace}/{pvc_name}"
    _create_restore_volume(kube, volume, backup, size, replicas)
    hooks.report(Progress(f"Restoring backup {backup_name} into Longhorn volume {volume}",
                          target=target, task="restore", status="restoring"))
    wait_for(
        lambda: True if _restore_done(kube.get_object(LH_VOLUMES, volume, NS), volume) else None,
        timeout=timeout, poll=poll, hooks=hooks,
        timeout_message=lambda err: f"Longhorn volume {volume} was still restoring from backup "
        f"{backup_name} after {timeout:.0f}s; check the volume in the Longhorn UI.",
        cancel_message=f"Stopped waiting for the restore of {backup_name}; Longhorn volume "
        f"{volume} is left as it is (delete it to undo).",
    )
    _create_pv(kube, volume, size, pvc_name, namespace, storage_class, access_modes, fs_type,
               replicas)
    _create_pvc(kube, volume, size, pvc_name, namespace, storage_class, access_modes)
    hooks.report(Progress(f"Restored backup {backup_name} into PVC {target}", target=target,
                          task="restore", status="done"))
    return RestoredVolume(volume, volume, pvc_name, namespace, backup_name, size)


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
    kube: Kube, volume: str, backup: Backup, size: str, replicas: int
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
            "accessMode": "rwo",
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


# ---- replica health -----------------------------------------------------------------------


def wait_replicas_healthy(
    kube: Kube,
    volumes: list[str] | None = None,
    *,
    timeout: float = 1800.0,
    poll: float = 10.0,
    hooks: Hooks | None = None,
) -> list[Volume]:
    """Wait until the volumes (default: every attached one) are healthy with all replicas.

    Healthy: robustness ``healthy`` and at least ``numberOfReplicas`` healthy replicas.
    """
    hooks = hooks or Hooks()
    behind: dict[str, str] = {}
    start = time.monotonic()

    def check() -> list[Volume] | None:
        chosen = [
            v for v in list_volumes(kube)
            if (v.name in volumes if volumes is not None else v.state == "attached")
        ]
        missing = set(volumes or []) - {v.name for v in chosen}
        if missing:
            raise NotFound(f"Longhorn volume(s) {', '.join(sorted(missing))} do not exist.")
        behind.clear()
        for v in chosen:
            have = len(v.healthy_replicas)
            if v.robustness != "healthy" or have < v.number_of_replicas:
                behind[v.name] = f"{v.robustness or 'unknown'}, {have}/{v.number_of_replicas}"
        if behind:
            hooks.report(Progress(
                f"Waiting for replicas: {', '.join(f'{k} ({v})' for k, v in behind.items())}",
                task="replicas", status="waiting"))
            return None
        return chosen

    result = wait_for(
        check, timeout=timeout, poll=poll, hooks=hooks,
        timeout_message=lambda err: (
            f"Longhorn volumes still not healthy after {timeout:.0f}s: "
            + ", ".join(f"{k} ({v} healthy replicas)" for k, v in sorted(behind.items()))
            + ". Check the Longhorn UI for replicas that cannot be scheduled."
        ),
        cancel_message="Stopped waiting for Longhorn replicas to rebuild; they go on rebuilding.",
    )
    hooks.report(Progress(
        f"All {len(result)} volume(s) healthy after {time.monotonic() - start:.0f}s",
        task="replicas", status="done"))
    return result

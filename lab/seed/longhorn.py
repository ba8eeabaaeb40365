"""The Longhorn part of the seed: the backup target, the recurring backup job, a Longhorn node per
K3s node, and for every volume of `lab.world.VOLUMES` its replicas, engine, backups, backup
volume, PVC and PV.

`longhorn_node` and `replica_object` are also what the lab's Longhorn controller creates when a
node registers or a replica is rebuilt or restored.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from lab.world import (
    BACKUP_TARGET_URL,
    LONGHORN_NS,
    NODES,
    VOLUMES,
    VolumeSpec,
    json_pvc_status,
    longhorn_backup_name,
    stable_hex,
    stable_uuid,
    ts,
)


def backup_volume_name(volume: str) -> str:
    return f"{volume}-{hashlib.sha256(volume.encode()).hexdigest()[:8]}"


def volume_robustness(vol: VolumeSpec) -> str:
    if vol.attached_to is None:
        return "unknown"
    healthy = sum(1 for _, ok in vol.replicas if ok)
    if healthy == 0:
        return "faulted"
    return "healthy" if healthy >= vol.number_of_replicas else "degraded"


def replica_object(
    volume: str, node: str, index: str, healthy: bool, running: bool, now: datetime
) -> dict[str, Any]:
    healthy_at = ts(now - timedelta(days=20))
    spec = {
        "volumeName": volume,
        "nodeID": node,
        "diskID": stable_uuid("disk", node),
        "diskPath": "/var/lib/longhorn/",
        "dataDirectoryName": f"{volume}-{index[:8]}",
        "engineName": f"{volume}-e-0",
        "healthyAt": healthy_at,  # Longhorn keeps healthyAt; failedAt marks a failure
        "lastHealthyAt": healthy_at,
        "failedAt": "" if healthy else ts(now - timedelta(hours=5)),
        "lastFailedAt": "" if healthy else ts(now - timedelta(hours=5)),
        "desireState": "running" if running else "stopped",
        "active": True,
    }
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Replica",
        "metadata": {
            "name": f"{volume}-r-{index[:8]}",
            "namespace": LONGHORN_NS,
            "labels": {
                "longhornvolume": volume,
                "longhornnode": node,
                "longhorndiskuuid": spec["diskID"],
            },
        },
        "spec": spec,
        "status": {
            "currentState": ("running" if running else "stopped") if healthy else "error",
            "ownerID": node,
            "instanceManagerName": f"instance-manager-{stable_hex(node)}",
        },
    }


def longhorn_objects(now: datetime) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "longhorn.io/v1beta2",
            "kind": "BackupTarget",
            "metadata": {"name": "default", "namespace": LONGHORN_NS},
            "spec": {
                "backupTargetURL": BACKUP_TARGET_URL,
                "credentialSecret": "longhorn-s3",
                "pollInterval": "5m0s",
            },
            "status": {"available": True, "conditions": [], "lastSyncedAt": ts(now)},
        },
        {
            "apiVersion": "longhorn.io/v1beta2",
            "kind": "RecurringJob",
            "metadata": {"name": "daily-backup", "namespace": LONGHORN_NS},
            "spec": {
                "name": "daily-backup",
                "task": "backup",
                "cron": "0 2 * * *",
                "retain": 7,
                "groups": ["default"],
                "concurrency": 2,
                "labels": {},
            },
            "status": {"executionCount": 42},
        },
        {   # Longhorn's default (types/setting.go); a Setting keeps its value at the top level
            "apiVersion": "longhorn.io/v1beta2",
            "kind": "Setting",
            "metadata": {"name": "concurrent-backup-restore-per-node-limit", "namespace": LONGHORN_NS},
            "value": "5",
        },
    ]
    for spec in NODES:
        objs.append(longhorn_node(spec.name, now))
    for vol in VOLUMES:
        objs.extend(volume_objects(vol, now))
    return objs


def longhorn_node(name: str, now: datetime) -> dict[str, Any]:
    disk = f"default-disk-{stable_hex('disk', name, n=16)}"
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Node",
        "metadata": {"name": name, "namespace": LONGHORN_NS},
        "spec": {
            "name": name,
            "allowScheduling": True,
            "evictionRequested": False,
            "tags": [],
            "disks": {
                disk: {
                    "path": "/var/lib/longhorn/",
                    "allowScheduling": True,
                    "evictionRequested": False,
                    "storageReserved": 0,
                    "tags": [],
                    "diskType": "filesystem",
                }
            },
        },
        "status": {
            "region": "",
            "zone": "",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "",
                    "message": "",
                    "lastTransitionTime": ts(now),
                },
                {
                    "type": "Schedulable",
                    "status": "True",
                    "reason": "",
                    "message": "",
                    "lastTransitionTime": ts(now),
                },
            ],
            "diskStatus": {
                disk: {
                    "diskUUID": stable_uuid("disk", name),
                    "storageMaximum": 107374182400,
                    "storageAvailable": 64424509440,
                    "conditions": [],
                }
            },
        },
    }


def volume_objects(vol: VolumeSpec, now: datetime) -> list[dict[str, Any]]:
    name = vol.name
    attached = vol.attached_to is not None
    last_backup_age = min(vol.backup_age_days)
    last_backup = longhorn_backup_name(name, last_backup_age)
    pv_name = name
    volume = {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Volume",
        "metadata": {
            "name": name,
            "namespace": LONGHORN_NS,
            "labels": {"recurring-job-group.longhorn.io/default": "enabled"},
        },
        "spec": {
            "size": str(vol.size_gi * 1024**3),
            "numberOfReplicas": vol.number_of_replicas,
            "frontend": "blockdev",
            "dataEngine": "v1",
            "accessMode": "rwo",
            "staleReplicaTimeout": 30,
            "fromBackup": "",
        },
        "status": {
            "state": "attached" if attached else "detached",
            "robustness": volume_robustness(vol),
            "currentNodeID": vol.attached_to or "",
            "ownerID": vol.attached_to or "k3s-server-1",
            "lastBackup": last_backup,
            "lastBackupAt": ts(now - timedelta(days=last_backup_age)),
            "restoreRequired": False,
            "kubernetesStatus": {
                "pvName": pv_name,
                "pvcName": vol.pvc,
                "namespace": vol.namespace,
                "pvStatus": "Bound",
                "workloadsStatus": [],
            },
            "conditions": [
                {
                    "type": "Scheduled",
                    "status": "True",
                    "reason": "",
                    "message": "",
                    "lastTransitionTime": ts(now),
                },
                {
                    "type": "Restore",
                    "status": "False",
                    "reason": "",
                    "message": "",
                    "lastTransitionTime": ts(now),
                },
            ],
        },
    }
    objs = [volume]
    for i, (node, healthy) in enumerate(vol.replicas):
        objs.append(
            replica_object(name, node, stable_hex(name, str(i), n=8), healthy, attached, now)
        )
    if attached:
        objs.append(
            {
                "apiVersion": "longhorn.io/v1beta2",
                "kind": "Engine",
                "metadata": {
                    "name": f"{name}-e-0",
                    "namespace": LONGHORN_NS,
                    "labels": {"longhornvolume": name, "longhornnode": vol.attached_to},
                },
                "spec": {"volumeName": name, "nodeID": vol.attached_to, "desireState": "running"},
                "status": {"currentState": "running", "ownerID": vol.attached_to},
            }
        )
    for age in vol.backup_age_days:
        objs.append(longhorn_backup_object(vol, age, now))
    objs.append(
        {
            "apiVersion": "longhorn.io/v1beta2",
            "kind": "BackupVolume",
            "metadata": {
                "name": backup_volume_name(name),
                "namespace": LONGHORN_NS,
                "labels": {"backup-target": "default", "backup-volume": name},
            },
            "spec": {"volumeName": name, "backupTargetName": "default"},
            "status": {
                "lastBackupName": last_backup,
                "lastBackupAt": ts(now - timedelta(days=last_backup_age)),
                "lastSyncedAt": ts(now),
                "size": str(vol.size_gi * 1024**3),
                "storageClassName": "longhorn",  # from volume.cfg (backup_volume_controller.go)
            },
        }
    )
    objs.append(pvc_object(vol))
    objs.append(pv_object(vol))
    return objs


def longhorn_backup_object(vol: VolumeSpec, age: float, now: datetime) -> dict[str, Any]:
    backup = longhorn_backup_name(vol.name, age)
    when = now - timedelta(days=age)
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Backup",
        "metadata": {
            "name": backup,
            "namespace": LONGHORN_NS,
            "labels": {"backup-volume": vol.name, "backup-target": "default"},
        },
        "spec": {
            "labels": {"KubernetesStatus": json_pvc_status(vol),
                       "longhorn.io/volume-access-mode": "rwo"},
            "snapshotName": f"snap-{stable_hex(backup)}",
        },
        "status": {
            "state": "Completed",
            "progress": 100,
            "url": f"{BACKUP_TARGET_URL}?backup={backup}&volume={vol.name}",
            "snapshotName": f"snap-{stable_hex(backup)}",
            "snapshotCreatedAt": ts(when),
            "backupCreatedAt": ts(when),
            "lastSyncedAt": ts(now),
            "size": str(vol.size_gi * 1024**3 // 4),
            "volumeName": vol.name,
            "volumeSize": str(vol.size_gi * 1024**3),
            "volumeCreated": ts(now - timedelta(days=90)),
            "backupTargetName": "default",
            "error": "",
            # the labels the backup was taken with, as its cfg in the store records them
            "labels": {"KubernetesStatus": json_pvc_status(vol),
                       "longhorn.io/volume-access-mode": "rwo"},
        },
    }


def pvc_object(vol: VolumeSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": vol.pvc,
            "namespace": vol.namespace,
            "annotations": {
                "pv.kubernetes.io/bind-completed": "yes",
                "volume.kubernetes.io/storage-provisioner": "driver.longhorn.io",
            },
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "longhorn",
            "resources": {"requests": {"storage": f"{vol.size_gi}Gi"}},
            "volumeName": vol.name,
        },
        "status": {"phase": "Bound", "capacity": {"storage": f"{vol.size_gi}Gi"}},
    }


def pv_object(vol: VolumeSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": vol.name},
        "spec": {
            "capacity": {"storage": f"{vol.size_gi}Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "longhorn",
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {"name": vol.pvc, "namespace": vol.namespace},
            "csi": {"driver": "driver.longhorn.io", "volumeHandle": vol.name, "fsType": "ext4"},
        },
        "status": {"phase": "Bound"},
    }

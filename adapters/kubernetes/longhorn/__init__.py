"""Longhorn (longhorn.io/v1beta2, namespace longhorn-system): volumes, replicas, nodes, backups.

- ``volumes``: volumes and their replicas, replica health, waiting until replicas are healthy;
- ``cleanup``: removing what a dead node leaves in Longhorn;
- ``backups``: backups, backup volumes and backup targets;
- ``take``: taking a backup now, labelled as Longhorn's API labels it;
- ``restore``: a backup into a new Volume, PersistentVolume and PersistentVolumeClaim;
- ``settings``: Longhorn settings drbot follows (the per-node restore limit).

The public names are re-exported here because many handlers call them as ``longhorn.<name>``.
"""

from adapters.kubernetes.longhorn._objects import NS
from adapters.kubernetes.longhorn.backups import (
    Backup,
    BackupTarget,
    BackupVolume,
    get_backup,
    get_backup_target,
    latest_backup,
    latest_restorable,
    list_backup_targets,
    list_backup_volumes,
    list_backups,
    request_target_sync,
    restorable,
)
from adapters.kubernetes.longhorn.cleanup import NodeCleanup, clean_dead_node, node_names
from adapters.kubernetes.longhorn.restore import (
    CSI_DRIVER,
    LiveRestore,
    PvcShape,
    RestoredVolume,
    RestoreState,
    discard_failed_restore,
    finish_restore,
    list_restores,
    pvc_bound_to,
    recorded_shape,
    restore_backup,
    restore_progress,
    restored_volume_name,
    start_restore,
)
from adapters.kubernetes.longhorn.settings import restore_limit
from adapters.kubernetes.longhorn.take import new_backup_name, trigger_backup
from adapters.kubernetes.longhorn.volumes import (
    Replica,
    Volume,
    get_volume,
    label,
    list_replicas,
    list_volumes,
    volumes_losing_last_replica,
    wait_replicas_healthy,
)

__all__ = [
    "CSI_DRIVER",
    "NS",
    "Backup",
    "BackupTarget",
    "BackupVolume",
    "NodeCleanup",
    "Replica",
    "LiveRestore",
    "PvcShape",
    "RestoreState",
    "RestoredVolume",
    "Volume",
    "clean_dead_node",
    "discard_failed_restore",
    "finish_restore",
    "get_backup",
    "get_backup_target",
    "get_volume",
    "label",
    "latest_backup",
    "latest_restorable",
    "list_backup_targets",
    "list_backup_volumes",
    "list_backups",
    "list_replicas",
    "list_restores",
    "list_volumes",
    "new_backup_name",
    "node_names",
    "pvc_bound_to",
    "recorded_shape",
    "request_target_sync",
    "restorable",
    "restore_backup",
    "restore_limit",
    "restore_progress",
    "restored_volume_name",
    "start_restore",
    "trigger_backup",
    "volumes_losing_last_replica",
    "wait_replicas_healthy",
]

"""CloudNativePG (postgresql.cnpg.io/v1): clusters, backups, scheduled backups.

The Cluster's own backup fields are "not set for backup plugins"; when a cluster archives through
the Barman Cloud plugin, its ObjectStore's ``status.serverRecoveryWindow`` fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.errors import Conflict, NotFound
from adapters.kubernetes.client import Kube
from adapters.kubernetes.resources import (
    BARMAN_OBJECTSTORES,
    CNPG_BACKUPS,
    CNPG_CLUSTERS,
    CNPG_SCHEDULEDBACKUPS,
)

BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"


@dataclass
class Cluster:
    name: str
    namespace: str
    ready: bool | None
    phase: str
    last_successful_backup: str
    last_failed_backup: str
    first_recoverability_point: str
    archiving: bool | None  # ContinuousArchiving condition; None when absent
    archiving_message: str
    object_store: str  # the plugin's ObjectStore name, "" without the plugin
    times_from: str  # "cluster" or "objectstore": where the three times above were read
    # Where its backups are: <destination>/<server_name>/{base,wals}/ (barman cloud layout).
    # server_name defaults to the cluster's name only when unset (a cluster recovered from
    # another usually sets a new one); destination "" when unknown.
    server_name: str = ""
    destination: str = ""


@dataclass
class CnpgBackup:
    name: str
    namespace: str
    cluster: str
    phase: str
    method: str
    started: str
    stopped: str
    error: str
    backup_id: str


@dataclass
class ScheduledBackup:
    name: str
    namespace: str
    cluster: str
    schedule: str  # cron with a leading seconds field
    suspended: bool
    method: str
    last_schedule: str
    next_schedule: str


def _meta(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("name", "")), str(meta.get("namespace", ""))


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return {}


def _tristate(cond: dict[str, Any]) -> bool | None:
    return {"True": True, "False": False}.get(str(cond.get("status")))


def _plugin(obj: dict[str, Any]) -> dict[str, Any]:
    for plugin in (obj.get("spec") or {}).get("plugins") or []:
        if isinstance(plugin, dict) and plugin.get("name") == BARMAN_PLUGIN:
            return plugin
    return {}


def _recovery_window(kube: Kube, obj: dict[str, Any]
                     ) -> tuple[str, dict[str, Any], str, str]:
    """(ObjectStore name, that store's window for this cluster, server name, destination path).

    With the barman-cloud plugin the server name is the plugin's ``serverName`` parameter and
    the path the ObjectStore's ``spec.configuration.destinationPath``; in-tree, both are in
    ``spec.backup.barmanObjectStore``. The server name defaults to the cluster's name.
    """
    name, namespace = _meta(obj)
    plugin = _plugin(obj)
    params = plugin.get("parameters") or {}
    store = str(params.get("barmanObjectName") or "")
    if not store:
        barman = ((obj.get("spec") or {}).get("backup") or {}).get("barmanObjectStore") or {}
        return "", {}, str(barman.get("serverName") or name), str(
            barman.get("destinationPath") or "")
    server = str(params.get("serverName") or name)
    try:
        store_obj = kube.get_object(BARMAN_OBJECTSTORES, store, namespace)
    except NotFound:
        return store, {}, server, ""
    windows = (store_obj.get("status") or {}).get("serverRecoveryWindow") or {}
    destination = (((store_obj.get("spec") or {}).get("configuration") or {})
                   .get("destinationPath") or "")
    return store, windows.get(server) or {}, server, str(destination)


def _to_cluster(kube: Kube, obj: dict[str, Any]) -> Cluster:
    name, namespace = _meta(obj)
    status = obj.get("status") or {}
    archiving = _condition(obj, "ContinuousArchiving")
    store, window, server, destination = _recovery_window(kube, obj)
    times = (
        str(status.get("lastSuccessfulBackup") or ""),
        str(status.get("lastFailedBackup") or ""),
        str(status.get("firstRecoverabilityPoint") or ""),
    )
    times_from = "cluster"
    if window:
        times = (
            str(window.get("lastSuccessfulBackupTime") or ""),
            str(window.get("lastFailedBackupTime") or ""),
            str(window.get("firstRecoverabilityPoint") or ""),
        )
        times_from = "objectstore"
    return Cluster(
        name=name,
        namespace=namespace,
        ready=_tristate(_condition(obj, "Ready")),
        phase=str(status.get("phase") or ""),
        last_successful_backup=times[0],
        last_failed_backup=times[1],
        first_recoverability_point=times[2],
        archiving=_tristate(archiving),
        archiving_message=str(archiving.get("message") or ""),
        object_store=store,
        times_from=times_from,
        server_name=server,
        destination=destination,
    )


def _sorted(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda i: (i.namespace, i.name))


def list_clusters(kube: Kube, namespace: str | None = None) -> list[Cluster]:
    return _sorted([_to_cluster(kube, o) for o in kube.list_objects(CNPG_CLUSTERS, namespace)])


def get_cluster(kube: Kube, name: str, namespace: str) -> Cluster:
    try:
        return _to_cluster(kube, kube.get_object(CNPG_CLUSTERS, name, namespace))
    except NotFound:
        raise NotFound(f"CloudNativePG cluster {namespace}/{name} does not exist.") from None


def _to_backup(obj: dict[str, Any]) -> CnpgBackup:
    name, namespace = _meta(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return CnpgBackup(
        name=name,
        namespace=namespace,
        cluster=str((spec.get("cluster") or {}).get("name") or ""),
        phase=str(status.get("phase") or ""),
        method=str(status.get("method") or spec.get("method") or "barmanObjectStore"),
        started=str(status.get("startedAt") or ""),
        stopped=str(status.get("stoppedAt") or ""),
        error=str(status.get("error") or ""),
        backup_id=str(status.get("backupId") or ""),
    )


def list_backups(
    kube: Kube, namespace: str | None = None, cluster: str | None = None
) -> list[CnpgBackup]:
    """CNPG Backup objects, oldest first (by start time)."""
    backups = [_to_backup(o) for o in kube.list_objects(CNPG_BACKUPS, namespace)]
    backups = [b for b in backups if cluster is None or b.cluster == cluster]
    return sorted(backups, key=lambda b: (b.started, b.name))


def list_scheduled_backups(kube: Kube, namespace: str | None = None) -> list[ScheduledBackup]:
    result = []
    for obj in kube.list_objects(CNPG_SCHEDULEDBACKUPS, namespace):
        name, ns = _meta(obj)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        result.append(ScheduledBackup(
            name=name,
            namespace=ns,
            cluster=str((spec.get("cluster") or {}).get("name") or ""),
            schedule=str(spec.get("schedule") or ""),
            suspended=bool(spec.get("suspend")),
            method=str(spec.get("method") or "barmanObjectStore"),
            last_schedule=str(status.get("lastScheduleTime") or ""),
            next_schedule=str(status.get("nextScheduleTime") or ""),
        ))
    return _sorted(result)


def new_backup_name(cluster: str) -> str:
    """A fresh name for the Backup object trigger_backup creates."""
    return f"{cluster}-drbot-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}"[:63]


def trigger_backup(kube: Kube, cluster: str, namespace: str, name: str = "") -> CnpgBackup:
    """Start an on-demand base backup of ``cluster`` by creating a Backup object.

    A cluster that archives through the Barman Cloud plugin gets ``method: plugin``. Given a
    ``name`` (new_backup_name) that exists already, an earlier call created it: that one is
    returned instead of a second backup.
    """
    obj = kube.get_object(CNPG_CLUSTERS, cluster, namespace) if cluster else {}
    if not obj:
        raise NotFound(f"CloudNativePG cluster {namespace}/{cluster} does not exist.")
    spec: dict[str, Any] = {"cluster": {"name": cluster}}
    if _plugin(obj):
        spec["method"] = "plugin"
        spec["pluginConfiguration"] = {"name": BARMAN_PLUGIN}
    name = name or new_backup_name(cluster)
    body = {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
    try:
        return _to_backup(kube.create_object(CNPG_BACKUPS, body, namespace))
    except Conflict:
        return _to_backup(kube.get_object(CNPG_BACKUPS, name, namespace))

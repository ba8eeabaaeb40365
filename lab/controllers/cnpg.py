"""CloudNativePG's operator for recovery Clusters (``spec.bootstrap.recovery``) and for on-demand
Backups, and the exec API of their instance pods.

A recovery Cluster reads ``bootstrap.recovery.source``, an entry of ``externalClusters`` holding
``barmanObjectStore`` or ``plugin`` (the Barman Cloud plugin, ``parameters.barmanObjectName``: an
ObjectStore of ``barmancloud.cnpg.io/v1`` in the Cluster's namespace); the server's folder is
``<destinationPath>/<serverName>`` with serverName defaulting to the entry's name (cloudnative-pg
api/v1/cluster_types.go BootstrapRecovery, ExternalCluster.GetServerName; plugin-barman-cloud
docs "Restore"). The Secrets its configuration names must exist in that namespace. While the
recovery job restores, ``status.phase`` is "Setting up primary" (PhaseFirstPrimary) and the
``Ready`` condition False; once the instance runs, the phase is "Cluster in healthy state",
``readyInstances`` 1, ``currentPrimary`` ``<name>-1`` and Ready True (ConditionClusterReady).

What the lab checks for real: the source entry, the ObjectStore, the Secrets, and that the store
(the lab's S3 bucket, read with drbot's barman-layout reader) holds a base backup with status
DONE for that serverName. When something is missing, the real recovery job fails and is
retried, and the Cluster never becomes Ready; the lab keeps it in "Setting up primary" and says
why in the Ready condition's message (the real operator leaves the why in the job's pod log).
A server in ``state.cnpg_never_ready`` never finishes its recovery (a test's fault).

A ``Backup`` (``postgresql.cnpg.io/v1``) runs as cloudnative-pg's backup controller
(internal/controller/backup_controller.go) and its instance manager take it, one phase per pass
(api/v1 backup_types.go BackupPhase; backup_funcs.go SetAsStarted/SetAsFailed/SetAsCompleted):
- its Cluster missing: the operator only emits the event "Unknown cluster <name>, will retry in
  30 seconds" and leaves the phase empty (it requeues; it never fails the Backup for that);
- ``failed`` with ``status.error`` as upstream words it when the Cluster cannot take it: method
  ``plugin`` without the plugin enabled on the Cluster ("cannot proceed with the backup as the
  cluster has no backup executor plugin enabled"), the default ``barmanObjectStore`` without a
  backup section ("cannot proceed with the backup as the cluster has no backup section") or
  without ``barmanObjectStore`` in it ("no barmanObjectStore section defined on the target
  cluster"), or the object store unusable when it runs ("encountered an error while taking the
  backup: ..." with why: the plugin's ObjectStore not found, a Secret missing, a bucket the lab
  does not serve);
- else ``started`` (``instanceID.podName``: the Cluster's target primary, ``method``), then
  ``running`` (``backupId``, ``backupName``, ``serverName``, ``destinationPath``, ``startedAt``,
  ``beginWal``, ``beginLSN``); ``walArchivingFailing`` instead while the Cluster's
  ``ContinuousArchiving`` condition is False (the instance manager waits for the archiver,
  pkg/management/postgres/backup.go), ``running`` again once it works; after
  ``Timings.cnpg_backup`` of running the base backup is written into
  the lab's store in barman's layout (lab/store.py ``barman_base_backup``, as the seed's) and the
  Backup is ``completed`` (``stoppedAt``, ``endWal``, ``endLSN``); the Cluster's
  ``lastSuccessfulBackup`` and its ``LastBackupSucceeded`` condition follow (cluster_types.go).
The lab's seeded Clusters have no instance pods, so the operator does not wait for the target
pod to be Ready (upstream keeps the Backup ``pending`` until it is).

The instance pod answers ``pods/<name>/exec`` with ``psql`` run against the data lab/cnpg_data.py
seeds for the recovered server (SQLite, not PostgreSQL: see there).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import kmock

from adapters.s3 import ObjectStore
from lab import cnpg_data, store, world
from lab.controllers.base import R_NODES, R_PODS, R_SECRETS, ControllerBase, condition
from lab.kube import ExecResult, now_iso

R_CNPG_CLUSTERS = kmock.resource("postgresql.cnpg.io", "v1", "clusters")
R_OBJECTSTORES = kmock.resource("barmancloud.cnpg.io", "v1", "objectstores")
R_CNPG_BACKUPS = kmock.resource("postgresql.cnpg.io", "v1", "backups")
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
PHASE_FIRST_PRIMARY = "Setting up primary"
PHASE_HEALTHY = "Cluster in healthy state"
CLUSTER_LABEL = "cnpg.io/cluster"
TAKING = "encountered an error while taking the backup: "


class BackupPhase(StrEnum):
    """A CNPG Backup's ``status.phase`` (cloudnative-pg api/v1/backup_types.go)."""

    PENDING = "pending"
    STARTED = "started"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    WAL_ARCHIVING_FAILING = "walArchivingFailing"


def secret_names(config: Any) -> set[str]:
    """Every ``{name, key}`` Secret selector in an object-store configuration."""
    found: set[str] = set()
    if isinstance(config, dict):
        if isinstance(config.get("name"), str) and isinstance(config.get("key"), str):
            found.add(config["name"])
        for value in config.values():
            found |= secret_names(value)
    elif isinstance(config, list):
        for value in config:
            found |= secret_names(value)
    return found


def has_base_backup(store: ObjectStore, server: str) -> bool:
    """A ``<server>/base/<id>/backup.info`` saying ``status=DONE`` (barman's layout)."""
    for info in store.list(f"{server}/base/"):
        if info.key.endswith("/backup.info") and b"status=DONE" in store.read(info.key):
            return True
    return False


class CnpgController(ControllerBase):
    """Recovers the recovery Clusters clients create, and runs psql in their pods."""

    # bucket -> the lab's S3 store of that bucket (set by lab.Lab), and where recovered
    # databases are kept
    cnpg_store: Callable[[str, str], ObjectStore] | None = None
    cnpg_data_dir: Path | None = None

    def cnpg_source(self, cluster: dict[str, Any]) -> tuple[str, dict[str, Any]] | str:
        """(serverName, object-store configuration) the recovery reads, or why it cannot."""
        spec, ns = cluster.get("spec") or {}, cluster["metadata"]["namespace"]
        source = ((spec.get("bootstrap") or {}).get("recovery") or {}).get("source")
        entry = next((e for e in spec.get("externalClusters") or []
                      if isinstance(e, dict) and e.get("name") == source), None)
        if entry is None:
            return f"externalClusters has no entry named {source!r}"
        if entry.get("barmanObjectStore"):
            config = entry["barmanObjectStore"]
            return str(config.get("serverName") or entry["name"]), config
        plugin = entry.get("plugin") or {}
        params = plugin.get("parameters") or {}
        if plugin.get("name") != BARMAN_PLUGIN or not params.get("barmanObjectName"):
            return f"external cluster {source!r} names no object store"
        store = self.kube.current(R_OBJECTSTORES, ns, str(params["barmanObjectName"]))
        if store is None:
            return f'ObjectStore "{params["barmanObjectName"]}" not found in namespace {ns}'
        config = ((store.get("spec") or {}).get("configuration")) or {}
        return str(params.get("serverName") or entry["name"]), config

    def cnpg_open_store(self, ns: str, config: dict[str, Any]) -> ObjectStore | str:
        """The store an object-store configuration names, or why barman-cloud cannot use it."""
        missing = sorted(s for s in secret_names(config)
                         if self.kube.current(R_SECRETS, ns, s) is None)
        if missing:
            return f'secret "{missing[0]}" not found in namespace {ns}'
        destination = str(config.get("destinationPath") or "")
        if not destination.startswith("s3://") or self.cnpg_store is None:
            return f"destinationPath {destination!r} is not an S3 bucket the lab serves"
        bucket, _, prefix = destination.removeprefix("s3://").partition("/")
        return self.cnpg_store(bucket, prefix)

    def cnpg_check_store(self, ns: str, server: str, config: dict[str, Any]) -> str:
        """Why barman-cloud-restore would fail for this store, or ""."""
        destination = str(config.get("destinationPath") or "")
        try:
            store = self.cnpg_open_store(ns, config)
            if isinstance(store, str):
                return store
            found = has_base_backup(store, server)
        except Exception as exc:  # noqa: BLE001 (any store failure fails the restore)
            return f"cannot read {destination}: {exc}"
        if not found:
            return f"no target backup found: {destination} holds no base backup of server {server}"
        return ""

    async def cnpg_clusters(self) -> None:
        for cluster in self.kube.live(R_CNPG_CLUSTERS):
            spec = cluster.get("spec") or {}
            if not (spec.get("bootstrap") or {}).get("recovery"):
                continue
            if condition(cluster, "Ready").get("status") == "True":
                continue
            await self.cnpg_recover(cluster)

    async def cnpg_recover(self, cluster: dict[str, Any]) -> None:
        ns, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        key = (ns, name)
        if key not in self.cnpg_problems:
            with self.state.lock:
                self.state.cnpg_recoveries.append(copy.deepcopy(cluster))
            found = self.cnpg_source(cluster)
            if isinstance(found, str):
                problem, server = found, ""
            else:
                server, config = found
                problem = await asyncio.to_thread(self.cnpg_check_store, ns, server, config)
            self.cnpg_problems[key] = problem
            self.cnpg_servers[key] = server
            await self.cnpg_status(ns, name, PHASE_FIRST_PRIMARY, False, "ClusterIsNotReady",
                                   problem or "Cluster Is Not Ready")
            self.state.record(f"cnpg cluster {ns}/{name}: recovering server {server or '?'}"
                              + (f" fails: {problem}" if problem else ""))
            return
        server = self.cnpg_servers.get(key, "")
        with self.state.lock:
            stuck = server in self.state.cnpg_never_ready
        if self.cnpg_problems[key] or stuck or not self.due(("cnpg", ns, name),
                                                             self.t.cnpg_recovery):
            return
        self.forget("cnpg", ns, name)
        await self.cnpg_start_instance(cluster, server)

    async def cnpg_start_instance(self, cluster: dict[str, Any], server: str) -> None:
        ns, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        assert self.cnpg_data_dir is not None
        path = self.cnpg_data_dir / f"{ns}--{name}.sqlite"
        with self.state.lock:
            lost = self.state.cnpg_lost_rows.get(server, 0)
        await asyncio.to_thread(cnpg_data.seed, path, server, datetime.now(UTC), lost)
        self.cnpg_databases[(ns, f"{name}-1")] = path
        nodes = sorted(n["metadata"]["name"] for n in self.kube.live(R_NODES)
                       if condition(n, "Ready").get("status") == "True")
        await self.create(R_PODS, ns, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-1", "namespace": ns, "labels": {
                CLUSTER_LABEL: name, "cnpg.io/instanceName": f"{name}-1",
                "cnpg.io/instanceRole": "primary"},
                "ownerReferences": [{"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                                     "name": name, "controller": True,
                                     "uid": str(cluster["metadata"].get("uid", ""))}]},
            "spec": {"nodeName": nodes[0] if nodes else "",
                     "containers": [{"name": "postgres",
                                     "image": spec_image(cluster)}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now_iso()}]}})
        await self.patch(R_CNPG_CLUSTERS, ns, name, {"status": {
            "instances": 1, "readyInstances": 1, "currentPrimary": f"{name}-1",
            "targetPrimary": f"{name}-1"}})
        await self.cnpg_status(ns, name, PHASE_HEALTHY, True, "ClusterIsReady",
                               "Cluster is Ready")
        self.state.record(f"cnpg cluster {ns}/{name}: recovered server {server}, Ready")

    async def cnpg_status(self, ns: str, name: str, phase: str, ready: bool, reason: str,
                          message: str) -> None:
        await self.patch(R_CNPG_CLUSTERS, ns, name, {"status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "reason": reason,
             "message": message, "lastTransitionTime": now_iso()}]}})

    async def cnpg_backups(self) -> None:
        for backup in self.kube.live(R_CNPG_BACKUPS):
            phase = (backup.get("status") or {}).get("phase") or ""
            if phase not in (BackupPhase.COMPLETED, BackupPhase.FAILED):
                await self.cnpg_backup(backup, phase)

    async def cnpg_backup(self, backup: dict[str, Any], phase: str) -> None:
        ns, name = backup["metadata"]["namespace"], backup["metadata"]["name"]
        cluster_name = str(((backup.get("spec") or {}).get("cluster") or {}).get("name") or "")
        cluster = self.kube.current(R_CNPG_CLUSTERS, ns, cluster_name)
        if cluster is None:
            if ("cnpg-unknown-cluster", ns, name) not in self.timers:
                self.due(("cnpg-unknown-cluster", ns, name), 0.0)
                self.state.record(f"cnpg backup {ns}/{name}: Unknown cluster {cluster_name}, "
                                  "will retry in 30 seconds")
            return
        target = backup_target(backup, cluster)
        if isinstance(target, str):
            await self.cnpg_backup_failed(ns, name, target)
            return
        method, server, source = target
        config = source if isinstance(source, dict) else self.cnpg_objectstore(ns, source)
        if not phase or phase == BackupPhase.PENDING:
            primary = str((cluster.get("status") or {}).get("targetPrimary")
                          or f"{cluster_name}-1")
            await self.patch(R_CNPG_BACKUPS, ns, name, {"status": {
                "phase": BackupPhase.STARTED, "method": method,
                "instanceID": {"podName": primary}}})
        elif phase == BackupPhase.STARTED:
            await self.cnpg_backup_run(backup, server, config)
        else:
            archiving = condition(cluster, "ContinuousArchiving").get("status") != "False"
            want = BackupPhase.RUNNING if archiving else BackupPhase.WAL_ARCHIVING_FAILING
            if phase != want:
                self.forget("cnpg-backup", ns, name)
                await self.patch(R_CNPG_BACKUPS, ns, name, {"status": {"phase": want}})
            elif archiving and self.due(("cnpg-backup", ns, name), self.t.cnpg_backup):
                await self.cnpg_backup_complete(backup, cluster, server, config)

    def cnpg_objectstore(self, ns: str, name: str) -> dict[str, Any] | str:
        """The configuration of the plugin's ObjectStore, or the API's NotFound as the plugin
        reports it."""
        found = self.kube.current(R_OBJECTSTORES, ns, name) if name else None
        if found is None:
            return f'objectstores.barmancloud.cnpg.io "{name}" not found'
        return dict((found.get("spec") or {}).get("configuration") or {})

    async def cnpg_backup_run(self, backup: dict[str, Any], server: str,
                              config: dict[str, Any] | str) -> None:
        ns, name = backup["metadata"]["namespace"], backup["metadata"]["name"]
        if isinstance(config, str):
            await self.cnpg_backup_failed(ns, name, TAKING + config)
            return
        opened = await asyncio.to_thread(self.cnpg_open_store, ns, config)
        if isinstance(opened, str):
            await self.cnpg_backup_failed(ns, name, TAKING + opened)
            return
        begin = datetime.now(UTC).replace(microsecond=0)
        backup_id = world.barman_backup_id(begin)
        self.forget("cnpg-backup", ns, name)
        self.due(("cnpg-backup", ns, name), self.t.cnpg_backup)  # starts its clock
        await self.patch(R_CNPG_BACKUPS, ns, name, {"status": {
            "phase": BackupPhase.RUNNING, "backupId": backup_id,
            "backupName": f"backup-{backup_id}", "serverName": server,
            "destinationPath": str(config.get("destinationPath") or ""),
            "startedAt": world.ts(begin), "beginWal": world.wal_name(begin, 0),
            "beginLSN": "0/5000028"}})
        self.state.record(f"cnpg backup {ns}/{name}: running, server {server}")

    async def cnpg_backup_complete(self, backup: dict[str, Any], cluster: dict[str, Any],
                                   server: str, config: dict[str, Any] | str) -> None:
        ns, name = backup["metadata"]["namespace"], backup["metadata"]["name"]
        status = backup.get("status") or {}
        begin = datetime.fromisoformat(str(status["startedAt"]).replace("Z", "+00:00"))
        opened = (await asyncio.to_thread(self.cnpg_open_store, ns, config)
                  if isinstance(config, dict) else config)
        if isinstance(opened, str):
            await self.cnpg_backup_failed(ns, name, TAKING + opened)
            return
        await asyncio.to_thread(write_objects, opened, store.barman_base_backup(server, begin))
        self.forget("cnpg-backup", ns, name)
        stopped = now_iso()
        await self.patch(R_CNPG_BACKUPS, ns, name, {"status": {
            "phase": BackupPhase.COMPLETED, "error": "", "stoppedAt": stopped,
            "endWal": world.wal_name(begin, 1), "endLSN": "0/6000138"}})
        cluster_name = cluster["metadata"]["name"]
        await self.patch(R_CNPG_CLUSTERS, ns, cluster_name, {"status": {
            "lastSuccessfulBackup": stopped, "conditions": [
                *[c for c in (cluster.get("status") or {}).get("conditions") or []
                  if c.get("type") != "LastBackupSucceeded"],
                {"type": "LastBackupSucceeded", "status": "True",
                 "reason": "LastBackupSucceeded", "message": "Backup was successful",
                 "lastTransitionTime": stopped}]}})
        self.state.record(f"cnpg backup {ns}/{name}: completed, base backup "
                          f"{world.barman_backup_id(begin)} of {server} stored")

    async def cnpg_backup_failed(self, ns: str, name: str, error: str) -> None:
        """SetAsFailed: phase ``failed`` and the error; the Backup is never retried."""
        self.forget("cnpg-backup", ns, name)
        await self.patch(R_CNPG_BACKUPS, ns, name, {"status": {
            "phase": BackupPhase.FAILED, "error": error}})
        self.state.record(f"cnpg backup {ns}/{name}: failed: {error}")

    def cnpg_exec(self, ns: str, pod: str, container: str, argv: list[str]
                  ) -> ExecResult | None:
        """psql in a recovered instance's ``postgres`` container; None for pods that are not
        one (the API server then answers as for any other pod)."""
        path = self.cnpg_databases.get((ns, pod))
        current = self.kube.current(R_PODS, ns, pod)
        if path is None or current is None or container not in ("", "postgres"):
            return None
        with self.state.lock:
            self.state.execs.append((f"{ns}/{pod}", list(argv)))
        return ExecResult(*cnpg_data.run_psql(path, argv))


def backup_target(backup: dict[str, Any], cluster: dict[str, Any]
                  ) -> tuple[str, str, dict[str, Any] | str] | str:
    """(method, serverName, the object-store configuration or, for the plugin, the name of its
    ObjectStore) of a Backup of ``cluster``, or why the operator fails it before it starts."""
    spec, cspec = backup.get("spec") or {}, cluster.get("spec") or {}
    name = cluster["metadata"]["name"]
    if spec.get("method") == "plugin":
        wanted = str((spec.get("pluginConfiguration") or {}).get("name") or "")
        plugin = next((p for p in cspec.get("plugins") or [] if isinstance(p, dict)
                       and p.get("name") == wanted and p.get("enabled", True)), None)
        if plugin is None:
            return ("cannot proceed with the backup as the cluster has no backup executor "
                    "plugin enabled")
        params = plugin.get("parameters") or {}
        return "plugin", str(params.get("serverName") or name), str(
            params.get("barmanObjectName") or "")
    backup_section = cspec.get("backup")
    if not backup_section:
        return "cannot proceed with the backup as the cluster has no backup section"
    config = backup_section.get("barmanObjectStore")
    if not config:
        return "no barmanObjectStore section defined on the target cluster"
    return "barmanObjectStore", str(config.get("serverName") or name), config


def write_objects(target: ObjectStore, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        target.upload(key, body)


def spec_image(cluster: dict[str, Any]) -> str:
    return str((cluster.get("spec") or {}).get("imageName")
               or "ghcr.io/cloudnative-pg/postgresql:16.4")

"""The lab's CloudNativePG operator taking a Backup (lab/controllers/cnpg.py), run alone on the
Kubernetes emulator with a moto bucket as the object store: drbot's adapter creates the Backup,
the operator walks it through upstream's phases and stores a base backup in barman's layout that
drbot's own reader finds; a Cluster that cannot take it fails it with upstream's words; a
missing Cluster leaves it waiting; failing WAL archiving holds it until archiving works."""

from __future__ import annotations

from typing import Any

from adapters import backupstore
from adapters.kubernetes import cnpg
from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from lab import schemas
from lab.controllers.base import Timings
from lab.controllers.cnpg import CnpgController
from lab.fakes.kube import Controller, StandaloneKube, add_cnpg_cluster, add_objectstore
from lab.fakes.s3 import S3Server
from tests.support import wait_until

NS = "db"


def operator(server: StandaloneKube, s3_server: S3Server) -> Controller:
    return Controller(server, CnpgController, "cnpg_backups", t=Timings(cnpg_backup=0.2),
                      cnpg_store=lambda bucket, prefix: s3_server.store(bucket, prefix))


def barman_cluster(server: StandaloneKube, name: str, bucket: str, *,
                   archiving: bool = True) -> None:
    add_cnpg_cluster(server, name, NS, archiving=(archiving, "" if archiving else "AccessDenied"))
    server.patch(R.CNPG_CLUSTERS, name, {"spec": {"backup": {"barmanObjectStore": {
        "destinationPath": f"s3://{bucket}/"}}}}, NS)


def status(server: StandaloneKube, name: str) -> dict[str, Any]:
    return (server.get(R.CNPG_BACKUPS, name, NS) or {}).get("status") or {}


def done(server: StandaloneKube, name: str) -> dict[str, Any] | None:
    now = status(server, name)
    return now if now.get("phase") in ("completed", "failed") else None


def phases_seen(server: StandaloneKube, name: str) -> list[str]:
    """Every phase the Backup went through, from the operator's PATCH requests."""
    path = server.path(R.CNPG_BACKUPS, NS, name)
    seen: list[str] = []
    for body in server.sent(lambda r: r.method == "PATCH" and r.url.path == path):
        phase = ((body or {}).get("status") or {}).get("phase")
        if phase and (not seen or seen[-1] != phase):
            seen.append(phase)
    return seen


def test_a_backup_completes_and_its_base_backup_is_in_the_store(
        kube_emulator: StandaloneKube, kube: Kube, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    barman_cluster(kube_emulator, "pg", bucket)
    taken = cnpg.trigger_backup(kube, "pg", NS, "pg-now")
    with operator(kube_emulator, s3_server):
        final = wait_until(lambda: done(kube_emulator, taken.name), 30, "the backup to end")
    assert final["phase"] == "completed" and final["error"] == ""
    assert phases_seen(kube_emulator, taken.name) == ["started", "running", "completed"]
    assert final["instanceID"] == {"podName": "pg-1"}
    assert (final["method"], final["serverName"]) == ("barmanObjectStore", "pg")
    assert final["destinationPath"] == f"s3://{bucket}/"
    assert final["startedAt"] <= final["stoppedAt"] and final["beginWal"] < final["endWal"]
    stored = backupstore.barman_backups(s3_server.store(bucket), "", "pg")
    assert [b.backup_id for b in stored] == [final["backupId"]]
    assert stored[0].status == "DONE"
    cluster = kube_emulator.get(R.CNPG_CLUSTERS, "pg", NS) or {}
    assert cluster["status"]["lastSuccessfulBackup"] == final["stoppedAt"]
    written = kube_emulator.get(R.CNPG_BACKUPS, taken.name, NS) or {}
    assert schemas.problems({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Backup",
                             **written}) == []
    listed = [b for b in cnpg.list_backups(kube, NS, "pg") if b.name == "pg-now"]
    assert listed[0].phase == "completed" and listed[0].backup_id == final["backupId"]


def test_a_cluster_without_a_backup_section_fails_the_backup(
        kube_emulator: StandaloneKube, kube: Kube, s3_server: S3Server) -> None:
    add_cnpg_cluster(kube_emulator, "bare", NS)
    cnpg.trigger_backup(kube, "bare", NS, "bare-now")
    with operator(kube_emulator, s3_server):
        final = wait_until(lambda: done(kube_emulator, "bare-now"), 30, "the backup to fail")
    assert final == {"phase": "failed",
                     "error": "cannot proceed with the backup as the cluster has no backup section"}


def test_a_plugin_backup_whose_object_store_is_missing_fails(
        kube_emulator: StandaloneKube, kube: Kube, s3_server: S3Server) -> None:
    add_cnpg_cluster(kube_emulator, "plug", NS, plugin_store="gone")
    taken = cnpg.trigger_backup(kube, "plug", NS, "plug-now")
    assert taken.method == "plugin"
    with operator(kube_emulator, s3_server):
        final = wait_until(lambda: done(kube_emulator, "plug-now"), 30, "the backup to fail")
    assert final["phase"] == "failed"
    assert final["error"] == ("encountered an error while taking the backup: "
                              'objectstores.barmancloud.cnpg.io "gone" not found')


def test_a_plugin_backup_is_stored_where_its_object_store_says(
        kube_emulator: StandaloneKube, kube: Kube, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    add_cnpg_cluster(kube_emulator, "plug", NS, plugin_store="store")
    add_objectstore(kube_emulator, "store", NS, "plug", {})
    kube_emulator.patch(R.BARMAN_OBJECTSTORES, "store", {"spec": {"configuration": {
        "destinationPath": f"s3://{bucket}/"}}}, NS)
    cnpg.trigger_backup(kube, "plug", NS, "plug-now")
    with operator(kube_emulator, s3_server):
        final = wait_until(lambda: done(kube_emulator, "plug-now"), 30, "the backup to end")
    assert (final["phase"], final["method"]) == ("completed", "plugin")
    assert [b.backup_id for b in backupstore.barman_backups(
        s3_server.store(bucket), "", "plug")] == [final["backupId"]]


def test_a_missing_cluster_leaves_the_backup_waiting_not_failed(
        kube_emulator: StandaloneKube, kube: Kube, s3_server: S3Server) -> None:
    """Upstream requeues ("Unknown cluster ..., will retry in 30 seconds") without a phase;
    a good backup created after it completes while it still waits."""
    bucket = s3_server.new_bucket()
    kube_emulator.create(R.CNPG_BACKUPS, {"metadata": {"name": "orphan", "namespace": NS},
                                         "spec": {"cluster": {"name": "nowhere"}}})
    barman_cluster(kube_emulator, "pg", bucket)
    cnpg.trigger_backup(kube, "pg", NS, "pg-now")
    with operator(kube_emulator, s3_server) as running:
        wait_until(lambda: done(kube_emulator, "pg-now"), 30, "the good backup to end")
    assert status(kube_emulator, "orphan") == {}
    assert any("Unknown cluster nowhere, will retry" in e for e in running.state.events)


def test_failing_wal_archiving_holds_the_backup_until_it_works(
        kube_emulator: StandaloneKube, kube: Kube, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    barman_cluster(kube_emulator, "pg", bucket, archiving=False)
    cnpg.trigger_backup(kube, "pg", NS, "pg-now")
    with operator(kube_emulator, s3_server):
        wait_until(lambda: status(kube_emulator, "pg-now").get("phase") == "walArchivingFailing",
                   30, "the backup to wait for WAL archiving")
        assert backupstore.barman_backups(s3_server.store(bucket), "", "pg") == []
        cluster = kube_emulator.get(R.CNPG_CLUSTERS, "pg", NS) or {}
        conditions = [{**c, "status": "True"} if c["type"] == "ContinuousArchiving" else c
                      for c in cluster["status"]["conditions"]]
        kube_emulator.patch(R.CNPG_CLUSTERS, "pg", {"status": {"conditions": conditions}}, NS)
        final = wait_until(lambda: done(kube_emulator, "pg-now"), 30, "the backup to end")
    assert final["phase"] == "completed"
    assert phases_seen(kube_emulator, "pg-now") == [
        "started", "running", "walArchivingFailing", "running", "completed"]

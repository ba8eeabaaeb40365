"""CloudNativePG clusters and backups, K3s etcd snapshot records."""

from __future__ import annotations

import pytest

from adapters.errors import NotFound
from adapters.kubernetes import cnpg, etcd
from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from lab.fakes.kube import (
    StandaloneKube,
    add_cnpg_backup,
    add_cnpg_cluster,
    add_cnpg_scheduled_backup,
    add_etcd_snapshot,
    add_objectstore,
)


def test_clusters_native_and_plugin(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_cnpg_cluster(kube_emulator, "pg", archiving=(False, "unexpected failure invoking "
                                                           "barman-cloud-wal-archive"))
    add_cnpg_cluster(kube_emulator, "pg2", plugin_store="store")
    add_objectstore(kube_emulator, "store", "db", "pg2", {
        "firstRecoverabilityPoint": "2026-01-01T00:00:00Z",
        "lastSuccessfulBackupTime": "2026-01-03T00:00:00Z"})
    pg, pg2 = cnpg.list_clusters(kube)
    assert pg.ready and pg.archiving is False and "wal-archive" in pg.archiving_message
    assert (pg.last_successful_backup, pg.times_from) == ("2026-01-02T01:00:00Z", "cluster")
    assert pg2.object_store == "store" and pg2.times_from == "objectstore"
    assert pg2.last_successful_backup == "2026-01-03T00:00:00Z"
    assert pg2.first_recoverability_point == "2026-01-01T00:00:00Z"
    assert cnpg.get_cluster(kube, "pg", "db").name == "pg"
    with pytest.raises(NotFound, match="db/nope"):
        cnpg.get_cluster(kube, "nope", "db")


def test_backups_scheduled_and_trigger(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_cnpg_cluster(kube_emulator, "pg")
    add_cnpg_cluster(kube_emulator, "pg2", plugin_store="store")
    add_cnpg_backup(kube_emulator, "pg-b2", "pg", started="2026-01-02T00:00:00Z")
    add_cnpg_backup(kube_emulator, "pg-b1", "pg", phase="failed", error="no space",
                    started="2026-01-01T00:00:00Z")
    add_cnpg_backup(kube_emulator, "other", "pg2")
    backups = cnpg.list_backups(kube, "db", "pg")
    assert [(b.name, b.phase, b.error) for b in backups] == [
        ("pg-b1", "failed", "no space"), ("pg-b2", "completed", "")]
    add_cnpg_scheduled_backup(kube_emulator, "daily", "pg")
    (daily,) = cnpg.list_scheduled_backups(kube)
    assert (daily.cluster, daily.schedule, daily.suspended) == ("pg", "0 0 1 * * *", False)

    made = cnpg.trigger_backup(kube, "pg", "db")
    assert made.cluster == "pg" and made.name.startswith("pg-drbot-")
    assert kube_emulator.get(R.CNPG_BACKUPS, made.name, "db")["spec"] == {
        "cluster": {"name": "pg"}}
    plugin = cnpg.trigger_backup(kube, "pg2", "db")
    assert kube_emulator.get(R.CNPG_BACKUPS, plugin.name, "db")["spec"] == {
        "cluster": {"name": "pg2"}, "method": "plugin",
        "pluginConfiguration": {"name": "barman-cloud.cloudnative-pg.io"}}
    with pytest.raises(NotFound):
        cnpg.trigger_backup(kube, "nope", "db")


def test_etcd_snapshots(kube_emulator: StandaloneKube, kube: Kube) -> None:
    assert etcd.list_etcd_snapshots(kube) == []
    add_etcd_snapshot(kube_emulator, "etcd-snapshot-k3s-1-1767312000", "k3s-1",
                      created="2026-01-02T00:00:00Z")
    add_etcd_snapshot(kube_emulator, "etcd-snapshot-k3s-1-1767312000", "k3s-1", s3=True,
                      created="2026-01-02T00:00:01Z")
    add_etcd_snapshot(kube_emulator, "on-demand-k3s-2-1767000000", "k3s-2", ready=False,
                      error="disk full", created="2025-12-29T00:00:00Z")
    failed, local, remote = etcd.list_etcd_snapshots(kube)
    assert (failed.node, failed.ready, failed.error) == ("k3s-2", False, "disk full")
    assert (local.s3, local.node, local.size) == (False, "k3s-1", "2048k")
    assert local.location.startswith("file:///var/lib/rancher/k3s/server/db/snapshots/")
    assert (remote.s3, remote.node, remote.name) == (
        True, "s3", "s3-etcd-snapshot-k3s-1-1767312000-a1b2c3")


def test_trigger_backup_again_with_the_same_name_returns_the_first(
        kube_emulator: StandaloneKube, kube: Kube) -> None:
    """A resumed step asks again under the name it recorded: the API server answers 409 and the
    backup the earlier call created comes back, not a second one."""
    add_cnpg_cluster(kube_emulator, "pg")
    first = cnpg.trigger_backup(kube, "pg", "db", "pg-drbot-resumed")
    kube_emulator.patch(R.CNPG_BACKUPS, "pg-drbot-resumed", {"status": {"phase": "running"}}, "db")
    again = cnpg.trigger_backup(kube, "pg", "db", "pg-drbot-resumed")
    assert (again.name, again.phase) == (first.name, "running")
    assert [b.name for b in cnpg.list_backups(kube, "db", "pg")] == ["pg-drbot-resumed"]

"""The CNPG side of the backup watch reads each cluster's backups where CNPG writes them,
`<destinationPath>/<serverName>/`, and tells clusters apart by namespace and name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from adapters.s3 import ObjectStore, StoreConfig
from bot.config.inventory import Backups, Inventory, Store
from bot.watch import facts
from lab import store_writers as sw
from lab.fakes.kube import StandaloneKube, add_cnpg_cluster

T0 = datetime(2026, 1, 2, 1, 0, tzinfo=UTC)


class Sources:
    def __init__(self, kube: Kube, store: ObjectStore) -> None:
        self.kube, self._store = kube, store

    def store(self, kind: str) -> ObjectStore:
        return self._store


def test_same_named_clusters_are_both_read_at_their_server_path(
        kube_emulator: StandaloneKube, kube: Kube, tmp_path: Path) -> None:
    (tmp_path / "pg").mkdir()
    url = f"file://{tmp_path}/pg/"
    store = ObjectStore(StoreConfig(url))
    for ns, server, backup_id in (("prod", "db-v2", "20260104T010000"),
                                  ("staging", "db", "20260103T010000")):
        add_cnpg_cluster(kube_emulator, "db", ns)
        kube_emulator.patch(R.CNPG_CLUSTERS, "db", {"spec": {"backup": {"barmanObjectStore": {
            "destinationPath": f"{url}{ns}", "serverName": server}}}}, ns)
        sw.write_barman_backup(store, ns, server, backup_id, begin_time=T0, end_time=T0)
    sw.write_barman_backup(store, "prod", "db", "20250101T010000", begin_time=T0, end_time=T0)
    inventory = Inventory(backups=Backups(cnpg_store=Store(url=url)))
    found = facts.Facts(datetime.now(UTC))
    found.sights["cluster"] = facts.Sight("cluster", "the emulator")
    facts.cnpg(Sources(kube, store), inventory, found)
    by_label = {o.label: o for o in found.objects}
    assert sorted(by_label) == ["prod/db", "staging/db"]
    assert sorted(by_label["prod/db"].backups) == ["20260104T010000"]  # not prod/db/, the old
    assert sorted(by_label["staging/db"].backups) == ["20260103T010000"]
    assert by_label["prod/db"].name != by_label["staging/db"].name

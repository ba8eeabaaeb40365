"""The etcd side of the backup watch joins the cluster's ETCDSnapshotFile objects and the
bucket's objects on one name, compressed or not."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from adapters.kubernetes.client import Kube
from adapters.s3 import ObjectStore, StoreConfig
from bot.config.inventory import Backups, Inventory, Store
from bot.watch import facts
from lab.fakes.kube import StandaloneKube, add_etcd_snapshot


class Sources:
    def __init__(self, kube: Kube, store: ObjectStore) -> None:
        self.kube, self._store = kube, store

    def store(self, kind: str) -> ObjectStore:
        return self._store


def test_a_compressed_snapshot_is_one_backup_found_on_both_sides(
        kube_emulator: StandaloneKube, kube: Kube, tmp_path: Path) -> None:
    """K3s names a compressed snapshot `<name>.zip` in spec.snapshotName and in the bucket."""
    (tmp_path / "etcd").mkdir()
    url = f"file://{tmp_path}/etcd/"
    store = ObjectStore(StoreConfig(url))
    for name in ("etcd-snapshot-k3s-1-1767312000.zip", "etcd-snapshot-k3s-1-1767398400"):
        store.upload(name, b"snapshot")
        add_etcd_snapshot(kube_emulator, name, "k3s-1", s3=True)
    inventory = Inventory(backups=Backups(etcd_store=Store(url=url)))
    found = facts.Facts(datetime.now(UTC))
    found.sights["cluster"] = facts.Sight("cluster", "the emulator")
    facts.etcd(Sources(kube, store), inventory, found)
    [etcd] = found.objects
    assert sorted(etcd.backups) == ["etcd-snapshot-k3s-1-1767312000",
                                    "etcd-snapshot-k3s-1-1767398400"]
    assert all(seen.in_store and seen.cluster_state == "completed"
               for seen in etcd.backups.values())

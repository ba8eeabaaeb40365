"""The Longhorn, barman-cloud and K3s etcd layouts, on moto's S3 and on a mounted directory."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from adapters import backupstore as bs
from adapters.errors import AdapterError, Cancelled, NotFound
from adapters.progress import Hooks, Progress
from adapters.s3 import ObjectStore, StoreConfig
from lab import store_writers as sw

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(params=["s3", "nfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "s3":
        return request.getfixturevalue("s3_store")
    return ObjectStore(StoreConfig(f"nfs://{tmp_path}"))


# --- Longhorn -----------------------------------------------------------------------------------

def test_volume_dir_follows_longhorns_sha512_rule() -> None:
    # `printf pvc-a | sha512sum` starts with 1c22; `printf pvc-b | sha512sum` with 11e7
    assert bs.longhorn_volume_dir("pvc-a") == "backupstore/volumes/1c/22/pvc-a/"
    assert bs.longhorn_volume_dir("pvc-b", "cluster1/") == \
        "cluster1/backupstore/volumes/11/e7/pvc-b/"
    assert bs.longhorn_backup_cfg_key("", "pvc-a", "backup-1") == \
        "backupstore/volumes/1c/22/pvc-a/backups/backup_backup-1.cfg"


def test_writer_produces_longhorns_json(store: ObjectStore) -> None:
    sw.write_longhorn_backup(store, "", "pvc-a", "backup-1", T0, 1234)
    backup = json.loads(store.read(bs.longhorn_backup_cfg_key("", "pvc-a", "backup-1")))
    volume = json.loads(store.read(bs.longhorn_volume_cfg_key("", "pvc-a")))
    assert backup["Name"] == "backup-1" and backup["VolumeName"] == "pvc-a"
    assert backup["CreatedTime"] == "2024-05-01T02:00:00Z" and backup["Size"] == "1234"
    assert volume["LastBackupName"] == "backup-1"
    assert volume["LastBackupAt"] == backup["SnapshotCreatedAt"]


def _seed(store: ObjectStore, root: str = "") -> None:
    for i in range(3):
        sw.write_longhorn_backup(store, root, "pvc-a", f"backup-a{i}", T0 + dt.timedelta(days=i),
                                 100 + i, volume_size=10 << 30)
    sw.write_longhorn_backup(store, root, "pvc-a", "backup-running", None, 7)
    sw.write_longhorn_backup(store, root, "data-db-0", "backup-d0", T0, 50)
    store.upload(bs.longhorn_volume_dir("data-db-0", root) + "blocks/ab/cd/abcd.blk", b"blk")
    sw.write_longhorn_volume(store, root, "never-backed-up", size=1 << 30)


@pytest.mark.parametrize("root", ["", "cluster1"])
def test_longhorn_volumes_and_backups(store: ObjectStore, root: str) -> None:
    _seed(store, root)
    volumes = bs.longhorn_volumes(store, root)
    assert [v.name for v in volumes] == ["data-db-0", "never-backed-up", "pvc-a"]
    by_name = {v.name: v for v in volumes}
    assert by_name["pvc-a"] == bs.LonghornBackupVolume("pvc-a", "backup-a2",
                                                       T0 + dt.timedelta(days=2), 10 << 30,
                                                       "longhorn")
    assert by_name["never-backed-up"].last_backup_name == ""
    assert by_name["never-backed-up"].last_backup_at is None

    backups = bs.longhorn_backups(store, root, "pvc-a")
    assert [b.name for b in backups] == ["backup-a0", "backup-a1", "backup-a2", "backup-running"]
    running = backups[-1]
    assert running.in_progress and running.created is None and running.size == 7
    assert not backups[0].in_progress and backups[0].created == T0 and backups[0].size == 100
    assert bs.longhorn_backup(store, root, "pvc-a", "backup-a1").created == \
        T0 + dt.timedelta(days=1)
    assert bs.longhorn_backups(store, root, "no-such-volume") == []


def test_volume_scan_cost_grows_with_volumes_not_backups(store: ObjectStore) -> None:
    def cost(backups_per_volume: int, prefix: str) -> int:
        for v in range(3):
            for b in range(backups_per_volume):
                sw.write_longhorn_backup(store, prefix, f"vol-{v}", f"b{b}",
                                         T0 + dt.timedelta(hours=b), 1)
        before = store.requests
        assert len(bs.longhorn_volumes(store, prefix)) == 3
        return store.requests - before

    assert cost(1, "one") == cost(12, "many")


def test_volume_dir_without_cfg_is_reported_not_hidden(store: ObjectStore) -> None:
    store.upload(bs.longhorn_volume_dir("orphan") + "backups/backup_x.cfg", b"{}")
    assert bs.longhorn_volumes(store) == [bs.LonghornBackupVolume("orphan", "", None, 0)]


@pytest.mark.parametrize("body, why", [
    (b"{not json", "not JSON"),
    (b"[]", "not a JSON object"),
    (b'{"Name": "pvc-a", "LastBackupAt": "yesterday"}', "LastBackupAt"),
    (b'{"Name": "pvc-a", "Size": "big"}', "Size"),
])
def test_corrupt_volume_cfg_names_the_key(store: ObjectStore, body: bytes, why: str) -> None:
    store.upload(bs.longhorn_volume_cfg_key("", "pvc-a"), body)
    with pytest.raises(AdapterError, match=f"1c/22/pvc-a/volume.cfg is corrupt .*{why}"):
        bs.longhorn_volumes(store)


def test_corrupt_backup_cfg_names_the_key(store: ObjectStore) -> None:
    sw.write_longhorn_backup(store, "", "pvc-a", "good", T0, 1)
    store.upload(bs.longhorn_backup_cfg_key("", "pvc-a", "bad"),
                 b'{"Name": "bad", "CreatedTime": "not a time"}')
    unreadable: list[str] = []
    assert [b.name for b in bs.longhorn_backups(store, "", "pvc-a", unreadable=unreadable)] == [
        "good"]  # one damaged cfg does not hide the volume's other backups
    assert len(unreadable) == 1
    assert re.search("backups/backup_bad.cfg is corrupt.*CreatedTime", unreadable[0])
    with pytest.raises(NotFound):
        bs.longhorn_backup(store, "", "pvc-a", "absent")


# --- barman-cloud -------------------------------------------------------------------------------

def test_barman_backups_round_trip(store: ObjectStore) -> None:
    sw.write_barman_backup(store, "pg", "cluster-a", "20240501T020000", begin_time=T0,
                           end_time=T0 + dt.timedelta(minutes=3),
                           begin_wal="000000010000000000000002",
                           end_wal="000000010000000000000003", timeline=1)
    sw.write_barman_backup(store, "pg", "cluster-a", "20240502T020000", status="FAILED")
    sw.write_barman_backup(store, "pg", "cluster-b", "20240501T030000")
    store.upload("pg/cluster-a/base/20240503T020000/data.tar", b"")  # still uploading

    assert bs.barman_servers(store, "pg") == ["cluster-a", "cluster-b"]
    backups = bs.barman_backups(store, "pg", "cluster-a")
    assert [(b.backup_id, b.status) for b in backups] == [
        ("20240501T020000", "DONE"), ("20240502T020000", "FAILED"), ("20240503T020000", "")]
    first = backups[0]
    assert first.begin_time == T0 and first.end_time == T0 + dt.timedelta(minutes=3)
    assert first.begin_wal == "000000010000000000000002" and first.timeline == 1
    assert backups[1].begin_time is None and backups[1].begin_wal is None


@pytest.mark.parametrize("written", [
    "2024-05-01 02:00:00.000000+00:00",
    "2024-05-01 04:00:00.000000+0200",
    "2024-05-01T02:00:00Z",
    "2024-05-01T02:00:00",
    "2024-05-01T02:00:00.000000000+00:00",
    "2024-05-01 02:00:00+00:00",
])
def test_backup_info_time_formats(store: ObjectStore, written: str) -> None:
    store.upload("pg/c/base/20240501T020000/backup.info",
                 f"status=DONE\nbegin_time={written}\nend_time=None\ntimeline=1\n".encode())
    (backup,) = bs.barman_backups(store, "pg", "c")
    assert backup.begin_time == T0 and backup.end_time is None


@pytest.mark.parametrize("body, why", [
    (b"status=DONE\nthis line has no equals sign\n", "line 2 is not key=value"),
    (b"status=DONE\nbegin_time=last tuesday\n", "begin_time"),
    (b"status=DONE\ntimeline=one\n", "timeline"),
    (b"", "empty"),
    (b"\xff\xfe\x00", "not text"),
])
def test_corrupt_backup_info_names_the_key(store: ObjectStore, body: bytes, why: str) -> None:
    store.upload("pg/c/base/20240501T020000/backup.info", body)
    with pytest.raises(AdapterError, match=f"c/base/20240501T020000/backup.info is corrupt.*{why}"):
        bs.barman_backups(store, "pg", "c")


def test_latest_wal_reads_only_the_newest_directory(store: ObjectStore) -> None:
    assert bs.barman_latest_wal(store, "pg", "c") is None
    for name in ["000000010000000000000001", "000000010000000000000002.gz",
                 "0000000100000001000000FE", "000000020000000100000003",
                 "000000020000000100000004.partial", "000000020000000100000002.00000028.backup"]:
        sw.write_wal(store, "pg", "c", name.split(".")[0], suffix=name[24:])
    sw.write_wal(store, "pg", "c", "00000002.history")

    before = store.requests
    name, modified = bs.barman_latest_wal(store, "pg", "c")
    assert name == "000000020000000100000004.partial"
    assert modified.tzinfo is not None
    assert store.requests - before == 2  # the wals/ prefixes, then one directory
    assert store.exists("pg/c/wals/00000002.history")
    assert store.exists("pg/c/wals/0000000100000000/000000010000000000000002.gz")


# --- K3s etcd snapshots -------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("etcd-snapshot-node-1-1714528800", ("etcd-snapshot", "node-1", 1714528800, False)),
    ("etcd-snapshot-k3s-server-a-b-1714528800.zip",
     ("etcd-snapshot", "k3s-server-a-b", 1714528800, True)),
    ("on-demand-srv1-1714528800", ("on-demand", "srv1", 1714528800, False)),
    ("nightly-srv-2-1714528800", ("nightly", "srv-2", 1714528800, False)),
    ("etcd-snapshot-node-1", None),
    ("readme.txt", None),
    ("etcd-snapshot-1714528800", None),
])
def test_parse_etcd_snapshot_name(name: str, expected: tuple | None) -> None:
    parsed = bs.parse_etcd_snapshot_name(name)
    if expected is None:
        assert parsed is None
    else:
        base, node, ts, compressed = expected
        assert parsed == (base, node, dt.datetime.fromtimestamp(ts, UTC), compressed)


def _snap(store: ObjectStore, node: str, hours: int, base: str = "etcd-snapshot",
          zipped: bool = False) -> str:
    ts = int((T0 + dt.timedelta(hours=hours)).timestamp())
    key = f"etcd/{base}-{node}-{ts}{'.zip' if zipped else ''}"
    store.upload(key, b"s" * (hours + 1))
    return key


def test_etcd_snapshots_listed_and_pruned(store: ObjectStore) -> None:
    keys = {(node, h): _snap(store, node, h, zipped=node == "srv-2")
            for node in ("srv-1", "srv-2") for h in (0, 12, 24, 36)}
    on_demand = _snap(store, "srv-1", 1, base="on-demand")
    store.upload("etcd/.metadata/etcd-snapshot-srv-1-1714528800", b"{}")
    store.upload("etcd/notes.txt", b"")

    snaps = bs.etcd_snapshots(store, "etcd")
    assert len(snaps) == 9
    newest = snaps[-1]
    assert newest.node in ("srv-1", "srv-2") and newest.taken_at == T0 + dt.timedelta(hours=36)
    assert {s.compressed for s in snaps if s.node == "srv-2"} == {True}
    assert next(s for s in snaps if s.key == on_demand).size == 2

    seen: list[Progress] = []
    deleted = bs.prune_etcd_snapshots(store, "etcd", 2, Hooks(report=seen.append))
    assert sorted(deleted) == sorted(keys[(n, h)] for n in ("srv-1", "srv-2") for h in (0, 12))
    left = {s.key for s in bs.etcd_snapshots(store, "etcd")}
    assert left == {keys[(n, h)] for n in ("srv-1", "srv-2") for h in (24, 36)} | {on_demand}
    assert len([p for p in seen if p.status == "deleted"]) == 4
    assert store.exists("etcd/.metadata/etcd-snapshot-srv-1-1714528800")
    assert bs.prune_etcd_snapshots(store, "etcd", 2) == []


def test_prune_refuses_zero_and_honours_cancel(store: ObjectStore) -> None:
    for h in range(3):
        _snap(store, "srv-1", h)
    with pytest.raises(AdapterError, match="keep at least one"):
        bs.prune_etcd_snapshots(store, "etcd", 0)
    with pytest.raises(Cancelled):
        bs.prune_etcd_snapshots(store, "etcd", 1, Hooks(cancelled=lambda: True))
    assert len(bs.etcd_snapshots(store, "etcd")) == 3


def test_upload_etcd_snapshot_skips_same_size(store: ObjectStore, tmp_path: Path) -> None:
    local = tmp_path / "snapshots" / "etcd-snapshot-srv-1-1714528800"
    local.parent.mkdir()
    local.write_bytes(b"a" * 100)
    key = bs.upload_etcd_snapshot(store, "etcd", local)
    assert key == "etcd/etcd-snapshot-srv-1-1714528800"
    assert store.read(key) == b"a" * 100

    before = store.requests
    assert bs.upload_etcd_snapshot(store, "etcd", local) == key
    assert store.requests - before == 1  # one stat, no upload

    local.write_bytes(b"b" * 120)
    bs.upload_etcd_snapshot(store, "etcd", local)
    assert store.read(key) == b"b" * 120
    with pytest.raises(NotFound, match="does not exist on this machine"):
        bs.upload_etcd_snapshot(store, "etcd", tmp_path / "missing")


# --- times --------------------------------------------------------------------------------------

def test_parse_time() -> None:
    assert bs.parse_time("") is None and bs.parse_time(None) is None
    assert bs.parse_time("None") is None
    assert bs.parse_time("2024-05-01T02:00:00.123456789Z") == T0.replace(microsecond=123456)
    assert bs.parse_time("Wed May  1 02:00:00 2024") == T0
    with pytest.raises(ValueError):
        bs.parse_time("soon")


def test_volume_cfg_string_fields_are_go_strings(store: ObjectStore) -> None:
    """longhorn/backupstore's Volume marks five string fields `,string`: Go writes each as a
    JSON string inside the string. Read so, and a plain string still reads as itself."""
    sw.write_longhorn_volume(store, "", "pvc-a", size=1 << 30)
    raw = json.loads(store.read(bs.longhorn_volume_cfg_key("", "pvc-a")))
    assert raw["CompressionMethod"] == '"lz4"' and raw["StorageClassName"] == '"longhorn"'
    assert bs.longhorn_volumes(store)[0].storage_class == "longhorn"
    raw["StorageClassName"] = "longhorn-ssd"
    store.upload(bs.longhorn_volume_cfg_key("", "pvc-a"), json.dumps(raw).encode())
    assert bs.longhorn_volumes(store)[0].storage_class == "longhorn-ssd"

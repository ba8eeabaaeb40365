"""The lab's object store content: Longhorn, barman (CNPG) and K3s etcd backups in their layouts.

Layouts follow domain.md §3 (Longhorn backupstore), §4 (barman cloud) and §5 (K3s snapshots).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from lab import store_writers as sw
from lab import world
from lab.longhorn_blocks import volume_blocks

SNAPSHOT_BYTES = b"lab etcd snapshot\n" * 64


def longhorn_volume_dir(volume: str, prefix: str = "") -> str:
    """`<path>/backupstore/volumes/<c[0:2]>/<c[2:4]>/<volume>`, c = sha512(volume)[:64]."""
    checksum = hashlib.sha512(volume.encode()).hexdigest()[:64]
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{head}backupstore/volumes/{checksum[0:2]}/{checksum[2:4]}/{volume}"


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def longhorn_objects(now: datetime) -> dict[str, bytes]:
    """key -> body for every seeded Longhorn backup."""
    out: dict[str, bytes] = {}
    for vol in world.VOLUMES:
        out.update(longhorn_volume_objects(vol, now))
    return out


def longhorn_volume_objects(vol: world.VolumeSpec, now: datetime, *, blocks: bool = True
                            ) -> dict[str, bytes]:
    """key -> body for one volume's backups: its volume.cfg, backup cfgs and (with ``blocks``)
    the blocks of a real ext4 filesystem; without, the cfgs only (what a sync reads)."""
    out: dict[str, bytes] = {}
    base = longhorn_volume_dir(vol.name)
    size = vol.size_gi * 1024**3
    latest_age = min(vol.backup_age_days)
    real = volume_blocks(vol) if blocks else None  # shared by the volume's backups
    if real is not None:
        out.update({f"{base}/{key}": body for key, body in real.objects.items()})
    for age in sorted(vol.backup_age_days, reverse=True):
        when = now - timedelta(days=age)
        name = world.longhorn_backup_name(vol.name, age)
        cfg = {
            "Name": name,
            "VolumeName": vol.name,
            "SnapshotName": f"snap-{world.stable_hex(name)}",
            "SnapshotCreatedAt": _rfc3339(when),
            "CreatedTime": _rfc3339(when),
            "Size": str(size // 4),
            # what a recurring job records: the KubernetesStatus label of Longhorn's API
            # (longhorn-manager api/snapshot.go) and the access mode of its backup webhook
            # (webhook/resources/backup/mutator.go)
            "Labels": {"KubernetesStatus": world.json_pvc_status(vol),
                       "longhorn.io/volume-access-mode": "rwo"},
            "Parameters": {},
            "IsIncremental": age != max(vol.backup_age_days),
            "CompressionMethod": "lz4",
            "Blocks": real.blocks if real is not None else [],
            "ProcessingBlocks": None,
        }
        out[f"{base}/backups/backup_{name}.cfg"] = json.dumps(cfg).encode()
    last = now - timedelta(days=latest_age)
    volume_cfg = {
        "Name": vol.name,
        "Size": str(size),
        "Labels": None,
        "CreatedTime": _rfc3339(now - timedelta(days=90)),
        "LastBackupName": world.longhorn_backup_name(vol.name, latest_age),
        "LastBackupAt": _rfc3339(last),
        "BlockCount": str(len(vol.backup_age_days)),
        # Go's `,string` fields: JSON strings inside the JSON string (longhorn/backupstore
        # backupstore.go, Volume)
        **sw.go_string_fields(BackingImageName="", BackingImageChecksum="",
                              CompressionMethod="lz4", StorageClassName="longhorn",
                              DataEngine="v1"),
    }
    out[f"{base}/volume.cfg"] = json.dumps(volume_cfg).encode()
    return out


def _barman_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


def barman_base_backup(server: str, begin: datetime) -> dict[str, bytes]:
    """key -> body of one base backup of ``server`` begun at ``begin`` (three minutes long), as
    barman-cloud-backup writes it under the destination: ``backup.info`` (status DONE) and the
    data tarball. The seed writes the past ones, the lab's CNPG operator each it takes."""
    end = begin + timedelta(minutes=3)
    backup_id = world.barman_backup_id(begin)
    info = {
        "backup_label": "None",
        "backup_name": f"backup-{backup_id}",
        "begin_offset": "40",
        "begin_time": _barman_time(begin),
        "begin_wal": world.wal_name(begin, 0),
        "begin_xlog": "0/5000028",
        "compression": "None",
        "config_file": "/var/lib/postgresql/data/pgdata/postgresql.conf",
        "end_offset": "312",
        "end_time": _barman_time(end),
        "end_wal": world.wal_name(begin, 1),
        "end_xlog": "0/6000138",
        "error": "None",
        "hba_file": "/var/lib/postgresql/data/pgdata/pg_hba.conf",
        "ident_file": "/var/lib/postgresql/data/pgdata/pg_ident.conf",
        "included_files": "['/var/lib/postgresql/data/pgdata/custom.conf']",
        "mode": "concurrent",
        "pgdata": "/var/lib/postgresql/data/pgdata",
        "server_name": "cloud",
        "size": "31457280",
        "status": "DONE",
        "systemid": "7398261023145987091",
        "tablespaces": "None",
        "timeline": "1",
        "version": "160004",
        "xlog_segment_size": "16777216",
        "backup_id": backup_id,
    }
    base = f"{server}/base/{backup_id}"
    return {f"{base}/backup.info": "".join(f"{k}={v}\n" for k, v in info.items()).encode(),
            f"{base}/data.tar.gz": gzip.compress(f"pgdata of {server}".encode())}


def cnpg_objects(now: datetime) -> dict[str, bytes]:
    """Base backups (backup.info + data.tar.gz) and WAL files, per CNPG cluster."""
    out: dict[str, bytes] = {}
    for pg in world.PG_CLUSTERS:
        for age in pg.backup_age_days:
            out.update(barman_base_backup(pg.name, now - timedelta(days=age)))
        last_wal = now - timedelta(hours=pg.last_wal_age_hours)
        first = now - timedelta(days=max(pg.backup_age_days))
        step = (last_wal - first) / 8
        for i in range(9):
            wal = world.wal_name(first + step * i, 0)
            out[f"{pg.name}/wals/{wal[:16]}/{wal}.gz"] = gzip.compress(wal.encode())
    return out


def etcd_objects(now: datetime) -> dict[str, bytes]:
    """Older snapshot copies of one server in S3 (the newer local ones are not copied yet)."""
    out: dict[str, bytes] = {}
    for days in (3, 4):
        when = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
        name = world.snapshot_name("k3s-server-1", when)
        out[f"{world.ETCD_FOLDER}/{name}"] = SNAPSHOT_BYTES
        meta = {
            "name": name,
            "nodeName": "s3",
            "createdAt": _rfc3339(when),
            "size": len(SNAPSHOT_BYTES),
            "status": "successful",
            "compressed": False,
        }
        out[f"{world.ETCD_FOLDER}/.metadata/{name}"] = json.dumps(meta).encode()
    return out


def seed(backend: Any, now: datetime) -> None:
    """Create the three buckets, empty, with every seeded object, straight in moto's S3 backend
    (``moto.s3.models.S3Backend``; moto runs in the lab's process). Through its HTTP API that was
    150 signed requests at every lab start; what drbot reads still goes through it."""
    plan = {
        world.BUCKETS["longhorn"]: longhorn_objects(now),
        world.BUCKETS["cnpg"]: cnpg_objects(now),
        world.BUCKETS["etcd"]: etcd_objects(now),
    }
    for bucket, objects in plan.items():
        if bucket in backend.buckets:
            empty(backend, bucket)
        else:
            backend.create_bucket(bucket, world.REGION)
        for key, body in objects.items():
            backend.put_object(bucket, key, body)


def empty(backend: Any, bucket: str) -> None:
    """Remove what an earlier lab in this process left (moto's state is per process)."""
    for key in list(backend.get_bucket(bucket).keys):
        backend.delete_object(bucket, key)

"""Writers of the backup layouts drbot reads: Longhorn's backupstore (cfgs and blocks) and
barman-cloud's (CloudNativePG), for the lab's seed, the tests and the benchmarks.

They live here, not beside the readers in adapters/, because drbot itself never writes these
layouts (Longhorn and barman do), and a writer that shares code with its reader would hide the
reader's mistakes. Field names and encodings follow the upstream writers cited in each function.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import lz4.frame

from adapters import backupstore
from adapters.s3 import ObjectStore
from adapters.verify.longhorn import (
    BLOCK_SIZE_PARAMETER,
    DEFAULT_BLOCK_SIZE,
    Block,
    Compression,
    Plan,
    block_key,
    checksum,
)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


# --- Longhorn backupstore (longhorn/backupstore backupstore.go, deltablock.go) ---------------------

def go_string_fields(**fields: str) -> dict[str, str]:
    """volume.cfg's string fields as Go's ``,string`` option writes them (see ``go_string``)."""
    return {name: json.dumps(value) for name, value in fields.items()}


def write_longhorn_volume(store: ObjectStore, root: str, volume: str, *, size: int,
                          last_backup_name: str = "", last_backup_at: datetime | None = None,
                          created: datetime | None = None) -> str:
    """Write ``volume.cfg`` in Longhorn's format; returns its key."""
    cfg = {
        "Name": volume,
        "Size": str(size),
        "Labels": None,
        "CreatedTime": _rfc3339(created or datetime.now(UTC)),
        "LastBackupName": last_backup_name,
        "LastBackupAt": _rfc3339(last_backup_at) if last_backup_at else "",
        "BlockCount": "0",
        **go_string_fields(BackingImageName="", BackingImageChecksum="",
                           CompressionMethod="lz4", StorageClassName="longhorn",
                           DataEngine="v1"),
    }
    key = backupstore.longhorn_volume_cfg_key(root, volume)
    store.upload(key, json.dumps(cfg).encode())
    return key


def longhorn_backup_cfg(volume: str, backup_name: str, created: datetime | None, size: int,
                        snapshot_created: datetime | None = None) -> bytes:
    """The JSON of ``backup_<name>.cfg`` as Longhorn writes it (empty CreatedTime = running)."""
    snapshot_at = snapshot_created or created or datetime.now(UTC)
    cfg = {
        "Name": backup_name,
        "VolumeName": volume,
        "SnapshotName": f"snap-{backup_name}",
        "SnapshotCreatedAt": _rfc3339(snapshot_at),
        "CreatedTime": _rfc3339(created) if created else "",
        "Size": str(size),
        "Labels": {"longhorn.io/volume-access-mode": "rwo"},
        "Parameters": None,
        "IsIncremental": True,
        "CompressionMethod": "lz4",
        "Blocks": [],
    }
    return json.dumps(cfg).encode()


def write_longhorn_backup(store: ObjectStore, root: str, volume: str, backup_name: str,
                          created: datetime | None, size: int, *,
                          snapshot_created: datetime | None = None,
                          volume_size: int | None = None) -> str:
    """Write a backup's cfg and, once it is complete, point ``volume.cfg`` at it (as Longhorn
    does at the end of a backup). ``created=None`` writes an in-progress backup. Returns its key.
    """
    snapshot_at = snapshot_created or created or datetime.now(UTC)
    key = backupstore.longhorn_backup_cfg_key(root, volume, backup_name)
    store.upload(key, longhorn_backup_cfg(volume, backup_name, created, size, snapshot_at))
    current = backupstore.longhorn_volume(store, root, volume)
    vol_size = volume_size if volume_size is not None else (current.size or size)
    if created is None:
        if not store.exists(backupstore.longhorn_volume_cfg_key(root, volume)):
            write_longhorn_volume(store, root, volume, size=vol_size)
        return key
    write_longhorn_volume(store, root, volume, size=vol_size, last_backup_name=backup_name,
                          last_backup_at=snapshot_at)
    return key


def compress(method: Compression, block: bytes) -> bytes:
    """A block as Longhorn stores it (``util.CompressData``; lz4 with pierrec/lz4 v4's writer
    defaults: 4 MiB frame blocks, content checksum, no content size); for the lab and tests."""
    if method is Compression.LZ4:
        return lz4.frame.compress(block, block_size=lz4.frame.BLOCKSIZE_MAX4MB,
                                  content_checksum=True, store_size=False, block_linked=False)
    if method is Compression.GZIP:
        return gzip.compress(block)
    return block


def write_backup(store: ObjectStore, root: str, volume: str, backup: str, image: Path, *,
                 created: datetime, compression: Compression = Compression.LZ4,
                 block_size: int = DEFAULT_BLOCK_SIZE, labels: dict[str, str] | None = None
                 ) -> Plan:
    """Cut a volume image into Longhorn blocks and write them, the backup cfg and volume.cfg as
    the backupstore lays them out. All-zero blocks are skipped, as Longhorn backs up only the
    snapshot's data extents. The volume size is the image size rounded up to a block."""
    size = image.stat().st_size

    def chunks() -> Iterator[tuple[int, bytes]]:
        with image.open("rb") as f:
            offset = 0
            while chunk := f.read(block_size):
                yield offset, chunk
                offset += len(chunk)

    return write_blocks(store, root, volume, backup, chunks(),
                        volume_size=-(-size // block_size) * block_size, created=created,
                        compression=compression, block_size=block_size, labels=labels)


def write_blocks(store: ObjectStore, root: str, volume: str, backup: str,
                 chunks: Iterable[tuple[int, bytes]], *, volume_size: int, created: datetime,
                 compression: Compression = Compression.LZ4, block_size: int = DEFAULT_BLOCK_SIZE,
                 labels: dict[str, str] | None = None, workers: int = 1) -> Plan:
    """Write ``(offset, data)`` chunks as Longhorn blocks (``workers`` uploads at a time), then
    the backup cfg and ``volume.cfg``; all-zero chunks are skipped."""
    blocks: list[Block] = []

    def upload(item: tuple[int, bytes]) -> Block:
        offset, chunk = item
        chunk = chunk.ljust(block_size, b"\0")
        sum_ = checksum(chunk)
        key = block_key(root, volume, sum_)
        if store.stat(key) is None:
            store.upload(key, compress(compression, chunk))
        return Block(offset, sum_)

    data = ((o, c) for o, c in chunks if c.count(0) != len(c))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        blocks = list(pool.map(upload, data))
    cfg = json.loads(longhorn_backup_cfg(volume, backup, created,
                                                     len(blocks) * block_size))
    cfg["CompressionMethod"] = compression.value
    cfg["Blocks"] = [{"Offset": b.offset, "BlockChecksum": b.checksum} for b in blocks]
    if labels:
        cfg["Labels"] = {**(cfg.get("Labels") or {}), **labels}
    if block_size != DEFAULT_BLOCK_SIZE:
        cfg["Parameters"] = {BLOCK_SIZE_PARAMETER: str(block_size)}
    store.upload(backupstore.longhorn_backup_cfg_key(root, volume, backup),
                 json.dumps(cfg).encode())
    write_longhorn_volume(store, root, volume, size=volume_size, last_backup_name=backup,
                          last_backup_at=created)
    return Plan(volume, backup, volume_size, block_size, compression, tuple(blocks), created)


# --- barman-cloud (barman/cloud.py, barman/infofile.py) -------------------------------------------

WAL_SEGMENT = re.compile(r"^[0-9A-F]{24}")  # a WAL segment name: timeline, log, segment


def barman_time(value: datetime | None) -> str:
    return str(value) if value else "None"  # barman saves datetimes with str()


def write_barman_backup(store: ObjectStore, destination: str, server: str, backup_id: str, *,
                        status: str = "DONE", begin_time: datetime | None = None,
                        end_time: datetime | None = None, begin_wal: str | None = None,
                        end_wal: str | None = None, timeline: int = 1, size: int = 0) -> str:
    """Write ``backup.info`` (and an empty ``data.tar``) as barman-cloud-backup does."""
    base = _join(destination, server, "base", backup_id)
    lines = {
        "backup_label": "None",
        "backup_name": "None",
        "begin_offset": "40",
        "begin_time": barman_time(begin_time),
        "begin_wal": begin_wal or "None",
        "begin_xlog": "0/2000028",
        "end_time": barman_time(end_time),
        "end_wal": end_wal or "None",
        "mode": "concurrent",
        "server_name": "cloud",
        "size": str(size),
        "status": status,
        "systemid": "7000000000000000000",
        "timeline": str(timeline),
        "version": "160000",
    }
    store.upload(f"{base}/data.tar", b"")
    key = f"{base}/backup.info"
    store.upload(key, "".join(f"{k}={v}\n" for k, v in lines.items()).encode())
    return key


def write_wal(store: ObjectStore, destination: str, server: str, wal_name: str,
              data: bytes = b"", *, suffix: str = "") -> str:
    """Archive a WAL file where barman-cloud-wal-archive puts it (history files sit directly
    in ``wals/``); ``suffix`` is the compression extension, e.g. ``.gz``."""
    directory = wal_name[:16] if WAL_SEGMENT.match(wal_name) else ""
    key = _join(destination, server, "wals", directory, wal_name + suffix)
    store.upload(key, data)
    return key

"""How a Longhorn backupstore scan costs: time and S3 requests, against moto on 127.0.0.1.

Seeds buckets in Longhorn's real layout (volume.cfg + backup_<name>.cfg per backup), then times
the scan drbot runs (``longhorn_volumes`` + one latest-backup lookup per volume) against floors
done with a plain boto3 client in the same process:

- floor-list: paginated ``list_objects_v2`` with a delimiter over ``backupstore/volumes/``, down
  the two hash levels to the volume names (the least any scan must do to find the volumes);
- floor-raw: the same requests as the scan (listing, ``volume.cfg``, the last backup's cfg) made
  with bare boto3 calls, so the ratio shows the adapter's own overhead.

Run: ``.venv/bin/python bench/backup_scan.py [--quick]``. Prints a table and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters import backupstore as bs  # noqa: E402
from adapters.s3 import ObjectStore, StoreConfig  # noqa: E402
from lab import store_writers as sw  # noqa: E402

WORKERS = 8
REPEATS = 3
T0 = datetime(2024, 1, 1, tzinfo=UTC)
FAKE = {"AWS_ACCESS_KEY_ID": "bench-access-key", "AWS_SECRET_ACCESS_KEY": "bench-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class Row:
    volumes: int
    backups: int
    objects: int
    seed_s: float
    scan_s: float
    scan_requests: int
    floor_list_s: float
    floor_list_requests: int
    floor_raw_s: float
    floor_raw_requests: int
    full_listing_requests: int


def seed(store: ObjectStore, volumes: int, backups: int) -> int:
    """Write every backup cfg, then each volume.cfg once (as it stands after the last backup)."""
    def one_volume(v: int) -> int:
        name = f"pvc-{v:05d}"
        for b in range(backups):
            created = T0 + timedelta(hours=b)
            store.upload(bs.longhorn_backup_cfg_key("", name, f"backup-{b:03d}"),
                         sw.longhorn_backup_cfg(name, f"backup-{b:03d}", created, 1 << 20))
        last = T0 + timedelta(hours=backups - 1)
        sw.write_longhorn_volume(store, "", name, size=10 << 30,
                                 last_backup_name=f"backup-{backups - 1:03d}",
                                 last_backup_at=last)
        return backups + 1

    with ThreadPoolExecutor(WORKERS) as pool:
        return sum(pool.map(one_volume, range(volumes)))


def scan(store: ObjectStore) -> int:
    """drbot's scan: every volume and its latest backup's cfg."""
    volumes = bs.longhorn_volumes(store, workers=WORKERS)
    with ThreadPoolExecutor(WORKERS) as pool:
        latest = list(pool.map(
            lambda v: bs.longhorn_backup(store, "", v.name, v.last_backup_name), volumes))
    assert all(not b.in_progress for b in latest)
    return len(latest)


class Counted:
    """A plain boto3 client whose HTTP requests are counted."""

    def __init__(self, endpoint: str) -> None:
        import boto3
        from botocore.config import Config

        self.requests = 0
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            config=Config(max_pool_connections=32, s3={"addressing_style": "path"}))
        self.client.meta.events.register("before-send.s3", self._count)

    def _count(self, **_: Any) -> None:
        self.requests += 1

    def prefixes(self, bucket: str, prefix: str) -> list[str]:
        out: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            out.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        return out


def floor_list(raw: Counted, bucket: str) -> list[str]:
    with ThreadPoolExecutor(WORKERS) as pool:
        level1 = raw.prefixes(bucket, "backupstore/volumes/")
        level2 = [p for ps in pool.map(lambda p: raw.prefixes(bucket, p), level1) for p in ps]
        return [p for ps in pool.map(lambda p: raw.prefixes(bucket, p), level2) for p in ps]


def floor_raw(raw: Counted, bucket: str) -> int:
    import json

    volume_dirs = floor_list(raw, bucket)

    def latest(prefix: str) -> bytes:
        cfg = raw.client.get_object(Bucket=bucket, Key=prefix + "volume.cfg")["Body"].read()
        name = json.loads(cfg)["LastBackupName"]
        key = f"{prefix}backups/backup_{name}.cfg"
        return raw.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    with ThreadPoolExecutor(WORKERS) as pool:
        return len(list(pool.map(latest, volume_dirs)))


def full_listing_requests(raw: Counted, bucket: str) -> int:
    """What listing every key under volumes/ costs (grows with backups, and with blocks)."""
    before = raw.requests
    for _ in raw.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="backupstore/volumes/"):
        pass
    return raw.requests - before


def timed(fn: Callable[[], object], counter: Callable[[], int]) -> tuple[float, int]:
    """Median wall time of REPEATS runs, and the requests of one run."""
    times, requests = [], 0
    for _ in range(REPEATS):
        before = counter()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        requests = counter() - before
    return statistics.median(times), requests


def run(endpoint: str, raw: Counted, volumes: int, backups: int, index: int) -> Row:
    bucket = f"bench-{index}-{volumes}x{backups}"
    raw.client.create_bucket(Bucket=bucket)
    store = ObjectStore(StoreConfig(f"s3://{bucket}", endpoint_url=endpoint, region="us-east-1"))
    start = time.perf_counter()
    objects = seed(store, volumes, backups)
    seed_s = time.perf_counter() - start

    assert scan(store) == volumes
    assert len(floor_list(raw, bucket)) == volumes
    scan_s, scan_req = timed(lambda: scan(store), lambda: store.requests)
    list_s, list_req = timed(lambda: floor_list(raw, bucket), lambda: raw.requests)
    raw_s, raw_req = timed(lambda: floor_raw(raw, bucket), lambda: raw.requests)
    return Row(volumes, backups, objects, seed_s, scan_s, scan_req, list_s, list_req, raw_s,
               raw_req, full_listing_requests(raw, bucket))


def print_table(rows: list[Row]) -> None:
    head = ("volumes", "bk/vol", "objects", "seed s", "scan s", "scan req", "req/vol",
            "floor-list s", "floor-list req", "floor-raw s", "floor-raw req",
            "scan/list", "scan/raw", "full-list req")
    lines = [head]
    for r in rows:
        lines.append((
            str(r.volumes), str(r.backups), str(r.objects), f"{r.seed_s:.1f}",
            f"{r.scan_s:.3f}", str(r.scan_requests), f"{r.scan_requests / r.volumes:.2f}",
            f"{r.floor_list_s:.3f}", str(r.floor_list_requests), f"{r.floor_raw_s:.3f}",
            str(r.floor_raw_requests), f"{r.scan_s / r.floor_list_s:.2f}x",
            f"{r.scan_s / r.floor_raw_s:.2f}x", str(r.full_listing_requests)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    args = parser.parse_args()
    sizes = [(20, 3), (20, 30)] if args.quick else [(100, 3), (100, 30), (1000, 30)]

    for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(key, None)
    os.environ.update(FAKE)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        raw = Counted(endpoint)
        rows = []
        for index, (volumes, backups) in enumerate(sizes):
            rows.append(run(endpoint, raw, volumes, backups, index))
            print(f"done {volumes} volumes x {backups} backups", file=sys.stderr, flush=True)
    finally:
        server.stop()

    print(f"moto on 127.0.0.1, {WORKERS} concurrent requests, median of {REPEATS} runs")
    print_table(rows)
    print("scan = longhorn_volumes + one latest-backup cfg read per volume; floor-list = bare "
          "delimiter listing down to the volume names; floor-raw = the scan's requests with bare "
          "boto3; full-list = listing every key under volumes/ (these buckets hold no blocks; "
          "a real store adds one key per 2 MiB block).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

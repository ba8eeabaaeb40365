"""Longhorn verification against a floor: throughput and peak memory, at 1 GiB and 4 GiB.

A Longhorn backup of a full volume (every 2 MiB block holds data: 1 MiB random, 1 MiB of a
repeating pattern, so lz4 halves it as it would ordinary files) is written into moto's S3 server,
which runs in a process of its own so that its memory is not counted. Then, each in a fresh child
process, alternating over three rounds:

- the floor: every block of the backup fetched plainly with boto3 (``get_object`` and read,
  ``WORKERS`` threads, the same as the verification) and thrown away;
- ``verify``: the block check (fetch, decompress, checksum) of the same backup;
- ``verify --deep``: the same, writing each block into a sparse image, then e2fsck-free (the
  image holds no filesystem: what is measured is the streaming, not fsck).

Targets: verify reads at >= 0.8x the floor's throughput at 1 GiB; the peak RSS of each verifying
process stays under 128 MiB at 1 GiB and at 4 GiB. Best of three per figure.

Run: ``.venv/bin/python bench/verify.py [--sizes 1,4] [--rounds 3]``. Prints a table; exits 1 if a
target is missed. Every process it starts is in its own session and is ended in ``finally`` (and
on SIGTERM/SIGINT), so the bench always ends and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.s3 import ObjectStore, StoreConfig  # noqa: E402
from adapters.subprocesses import kill_tree  # noqa: E402
from adapters.verify import longhorn as lv  # noqa: E402
from adapters.verify.scratch import ScratchConfig  # noqa: E402

GIB, MIB = 1 << 30, 1 << 20
WORKERS = 8
RATIO_TARGET = 0.8
RSS_TARGET = 128 * MIB
CHILD_TIMEOUT = 1800
KEY, SECRET = "bench-access-key", "bench-secret-key"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def store_for(endpoint: str, bucket: str) -> ObjectStore:
    return ObjectStore(StoreConfig(f"s3://{bucket}", endpoint_url=endpoint, access_key=KEY,
                                   secret_key=SECRET, read_timeout=300))


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)  # noqa: S310 - loopback
            return proc, endpoint
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("moto_server did not start") from None
            time.sleep(0.2)


def s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(max_pool_connections=32, s3={"addressing_style": "path"}))


def reset(endpoint: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - loopback
        f"{endpoint}/moto-api/reset", method="POST"), timeout=60)


def seed(store: ObjectStore, volume: str, size: int) -> lv.Plan:
    from lab import store_writers as sw  # the parent only: the lab is not in a child's memory

    pattern = bytes(range(256)) * (MIB // 256)

    def chunks() -> Any:
        for offset in range(0, size, lv.DEFAULT_BLOCK_SIZE):
            yield offset, os.urandom(MIB) + pattern

    return sw.write_blocks(store, "", volume, "backup-bench", chunks(), volume_size=size,
                           created=datetime.now(UTC), workers=WORKERS)


# --- what each child process measures -----------------------------------------------------------

def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def child(mode: str, endpoint: str, bucket: str, volume: str, scratch: str) -> dict[str, Any]:
    store = store_for(endpoint, bucket)
    started = time.monotonic()
    if mode == "floor":
        plan = lv.load_plan(store, "", volume)
        client = s3_client(endpoint)

        def fetch(block: lv.Block) -> int:
            body = client.get_object(Bucket=bucket, Key=lv.block_key("", volume, block.checksum))
            return len(body["Body"].read())

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            nbytes = sum(pool.map(fetch, plan.blocks))
        ok = True
    else:
        result = lv.verify(store, "", volume, deep=mode == "deep",
                           scratch=ScratchConfig(scratch), workers=WORKERS)
        nbytes, ok = result.bytes_read, result.ok
    return {"seconds": time.monotonic() - started, "bytes": nbytes, "rss": peak_rss(), "ok": ok}


def measure(mode: str, endpoint: str, bucket: str, volume: str, scratch: str) -> dict[str, Any]:
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, endpoint, bucket, volume,
                             scratch], stdout=subprocess.PIPE, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=CHILD_TIMEOUT)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid, grace=5)
            proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"{mode} child failed with exit code {proc.returncode}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


# --- the run ------------------------------------------------------------------------------------

def run(sizes: list[int], rounds: int) -> bool:
    proc, endpoint = start_moto()
    scratch = tempfile.mkdtemp(prefix="drbot-bench-verify-")
    passed = True
    try:
        rows = []
        for gib in sizes:
            bucket = f"bench-{gib}g-{os.getpid()}"
            store = store_for(endpoint, bucket)
            s3_client(endpoint).create_bucket(Bucket=bucket)
            started = time.monotonic()
            plan = seed(store, f"pvc-{gib}g", gib * GIB)
            print(f"seeded {gib} GiB ({len(plan.blocks)} blocks) in "
                  f"{time.monotonic() - started:.0f} s", flush=True)
            best: dict[str, dict[str, Any]] = {}
            for _ in range(rounds):
                for mode in ("floor", "verify", "deep"):
                    got = measure(mode, endpoint, bucket, plan.volume, scratch)
                    if not got["ok"]:
                        raise SystemExit(f"{mode} found the seeded backup damaged")
                    prev = best.get(mode)
                    best[mode] = got if prev is None or got["seconds"] < prev["seconds"] else prev
                    best[mode]["rss"] = max(got["rss"], (prev or got)["rss"])
            rows.append((gib, best))
            reset(endpoint)  # frees moto's memory before the next size
        passed = report(rows)
    finally:
        kill_tree(proc.pid, grace=5)
        proc.wait()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return passed


def check_cost() -> str:
    """What the check itself costs one core here: SHA-512 and lz4 over one 2 MiB block."""
    import hashlib

    block = os.urandom(MIB) + bytes(MIB)
    from lab import store_writers as sw

    packed = sw.compress(lv.Compression.LZ4, block)
    rates = []
    for fn in (lambda: hashlib.sha512(block).digest(),
               lambda: lv._decompress(lv.Compression.LZ4, packed)):
        started = time.perf_counter()
        for _ in range(20):
            fn()
        rates.append(20 * len(block) / (time.perf_counter() - started) / 1e6)
    return (f"one core here: SHA-512 {rates[0]:.0f} MB/s, lz4 decode {rates[1]:.0f} MB/s "
            f"(of uncompressed data); cores: {os.cpu_count()}")


def mb_s(row: dict[str, Any]) -> float:
    return row["bytes"] / row["seconds"] / 1e6


def report(rows: list[tuple[int, dict[str, dict[str, Any]]]]) -> bool:
    ok = True
    print(f"\n{check_cost()}")
    print(f"{'volume':>6} {'mode':<8} {'seconds':>8} {'MB/s read':>10} {'peak RSS':>10} "
          f"{'vs floor':>9}  target")
    for gib, best in rows:
        floor = mb_s(best["floor"])
        for mode in ("floor", "verify", "deep"):
            row = best[mode]
            ratio = mb_s(row) / floor
            target = ""
            if mode != "floor":
                rss_ok = row["rss"] < RSS_TARGET
                target = f"RSS < 128 MiB: {'ok' if rss_ok else 'MISSED'}"
                ok &= rss_ok
                if mode == "verify" and gib == 1:
                    ratio_ok = ratio >= RATIO_TARGET
                    target += f"; >= {RATIO_TARGET}x floor: {'ok' if ratio_ok else 'MISSED'}"
                    ok &= ratio_ok
            print(f"{gib:>4}Gi {mode:<8} {row['seconds']:>8.1f} {mb_s(row):>10.1f} "
                  f"{row['rss'] / MIB:>7.1f}MiB {ratio:>8.2f}x  {target}")
    return ok


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:7])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,4", help="volume sizes in GiB")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))  # run the finally blocks
    os.environ.update({"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET})
    return 0 if run([int(s) for s in args.sizes.split(",")], args.rounds) else 1


if __name__ == "__main__":
    sys.exit(main())

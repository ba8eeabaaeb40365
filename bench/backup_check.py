"""A full backup check at homelab scale and at ten times that, in moto + the Kubernetes emulator.

Seeds, at full size, 1,000 Longhorn volumes with 30 backups each (a Volume and 30 Backup objects
in Kubernetes; volume.cfg and 30 backup cfgs per volume in the bucket), 50 CNPG clusters (7 base
backups and a few WAL files each) and 200 etcd snapshots (ETCDSnapshotFile objects and the S3
objects); then times one check (collect both sides + evaluate) and counts its requests. The same
check at one tenth of the objects (still 30 backups per volume) shows that the cost grows with the
objects watched, not with the backups kept. Seeding writes straight into the servers' stores (it
is not what is measured); the check speaks HTTP to both, as in production.

The floor: at each size, the same kind of S3 requests (a volume's volume.cfg read and its backup
listing) made bare through boto3 against the same buckets, one after another. Its time per request
shows what the test servers themselves cost as they fill up (moto scans a whole bucket to answer
a prefix listing; real S3 does not), so that the check's own growth can be read apart from theirs.

Run: ``.venv/bin/python bench/backup_check.py [--quick]``. Prints a table and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters import backupstore as bs  # noqa: E402
from adapters.kubernetes import resources as R  # noqa: E402
from bot.config.inventory import Backups, Inventory, KubernetesTarget, Store  # noqa: E402
from bot.config.settings import Settings  # noqa: E402
from bot.watch.evaluate import evaluate  # noqa: E402
from bot.watch.facts import collect  # noqa: E402
from bot.worker.services import Services  # noqa: E402
from lab import store_writers as sw  # noqa: E402
from lab.fakes.kube import StandaloneKube, write_kubeconfig  # noqa: E402

FAKE = {"AWS_ACCESS_KEY_ID": "bench-access-key", "AWS_SECRET_ACCESS_KEY": "bench-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1"}
NOW = datetime.now(UTC)


@dataclass
class Row:
    volumes: int
    backups: int
    clusters: int
    snapshots: int
    seconds: float
    store_requests: int
    kube_requests: int
    findings: int
    floor_ms: float = 0.0  # one bare S3 request, at this size


def floor_ms(endpoint: str, bucket: str, volumes: list[str], sample: int = 60) -> float:
    """Milliseconds per bare S3 request of the kinds the check makes per volume."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    picked = volumes[:: max(1, len(volumes) // sample)][:sample]
    client.list_objects_v2(Bucket=bucket, MaxKeys=1)  # connect outside the timing
    started = time.monotonic()
    for name in picked:
        client.get_object(Bucket=bucket, Key=bs.longhorn_volume_cfg_key("", name))["Body"].read()
        client.list_objects_v2(Bucket=bucket, Prefix=bs.longhorn_volume_dir(name, "") + "backups/",
                               Delimiter="/")
    return (time.monotonic() - started) * 1000 / (2 * len(picked))


def ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_kube(server: StandaloneKube, objects: list[tuple[R.Resource, dict[str, Any]]]) -> None:
    import kmock

    def put() -> None:
        emulator = server.emulator
        for res, obj in objects:
            meta = obj["metadata"]
            ns = meta.get("namespace") if res.namespaced else None
            obj.setdefault("apiVersion", res.api_version)
            obj.setdefault("kind", res.kind)
            emulator.objects[kmock.resource(res.group, res.version, res.plural), ns,
                             meta["name"]] = obj
    server.on_loop(put)


def seed(server: StandaloneKube, s3: Any, tag: str, volumes: int, backups: int, clusters: int,
         snapshots: int) -> dict[str, str]:
    buckets = {k: f"bench-{tag}-{k}" for k in ("longhorn", "cnpg", "etcd")}
    for bucket in buckets.values():
        s3.create_bucket(bucket, "us-east-1")
    objs: list[tuple[R.Resource, dict[str, Any]]] = []
    for v in range(volumes):
        name = f"pvc-{tag}-{v:05d}"
        objs.append((R.LH_VOLUMES, {"metadata": {"name": name, "namespace": R.LONGHORN_NAMESPACE},
                                    "spec": {}, "status": {"kubernetesStatus": {
                                        "pvcName": f"data-{v}", "namespace": "apps"}}}))
        for b in range(backups):
            when = NOW - timedelta(days=b, hours=1)
            backup = f"backup-{tag}-{v:05d}-{b:02d}"
            s3.put_object(buckets["longhorn"], bs.longhorn_backup_cfg_key("", name, backup),
                          sw.longhorn_backup_cfg(name, backup, when, 1024))
            objs.append((R.LH_BACKUPS, {
                "metadata": {"name": backup, "namespace": R.LONGHORN_NAMESPACE,
                             "labels": {"backup-volume": name}},
                "status": {"state": "Completed", "volumeName": name, "backupCreatedAt": ts(when),
                           "snapshotCreatedAt": ts(when)}}))
        last = NOW - timedelta(hours=1)
        cfg = {"Name": name, "Size": "1024", "LastBackupName": f"backup-{tag}-{v:05d}-00",
               "LastBackupAt": ts(last)}
        s3.put_object(buckets["longhorn"], bs.longhorn_volume_cfg_key("", name),
                      json.dumps(cfg).encode())
    for c in range(clusters):
        name = f"pg-{tag}-{c:03d}"
        objs.append((R.CNPG_CLUSTERS, {"metadata": {"name": name, "namespace": "db"},
                                       "status": {"conditions": [{"type": "ContinuousArchiving",
                                                                  "status": "True"}]}}))
        for b in range(7):
            when = NOW - timedelta(days=b, hours=2)
            backup_id = when.strftime("%Y%m%dT%H%M%S")
            info = (f"status=DONE\nbegin_time={when}\nend_time={when + timedelta(minutes=3)}\n"
                    "timeline=1\n")
            s3.put_object(buckets["cnpg"], f"{name}/base/{backup_id}/backup.info", info.encode())
        for w in range(3):
            wal = f"00000001000000{w:02X}000000{w:02X}"
            s3.put_object(buckets["cnpg"], f"{name}/wals/{wal[:16]}/{wal}.gz", b"wal")
    for s in range(snapshots):
        when = NOW - timedelta(hours=12 * (s // 3) + 1)
        snap = f"etcd-snapshot-k3s-server-{s % 3 + 1}-{int(when.timestamp())}"
        s3.put_object(buckets["etcd"], f"k3s-etcd/{snap}", b"snapshot")
        objs.append((R.ETCD_SNAPSHOT_FILES, {
            "metadata": {"name": f"s3-{snap}-{tag}"},
            "spec": {"snapshotName": snap, "nodeName": "s3", "location": f"s3://x/{snap}"},
            "status": {"creationTime": ts(when), "readyToUse": True}}))
    seed_kube(server, objs)
    return buckets


def measure(server: StandaloneKube, endpoint: str, kubeconfig: Path, buckets: dict[str, str],
            sizes: tuple[int, int, int, int]) -> Row:
    def store(kind: str, prefix: str = "") -> Store:
        return Store(url=f"s3://{buckets[kind]}/{prefix}", endpoint_url=endpoint)

    inventory = Inventory(kubernetes=KubernetesTarget(kubeconfig=str(kubeconfig)),
                          backups=Backups(longhorn_store=store("longhorn"),
                                          cnpg_store=store("cnpg"),
                                          etcd_store=store("etcd", "k3s-etcd")))
    services = Services(Settings(kubeconfig=None), inventory)
    before = len(server.on_loop(lambda: list(server.emulator)))
    started = time.monotonic()
    facts = collect(services, inventory, NOW)
    findings = evaluate(facts, inventory.backups, NOW)
    seconds = time.monotonic() - started
    kube_requests = len(server.on_loop(lambda: list(server.emulator))) - before
    blind = [s.what for s in facts.sights.values() if s.configured and not s.ok]
    if blind:
        raise SystemExit(f"the check could not read {blind}")
    return Row(*sizes, seconds, facts.store_requests, kube_requests, len(findings))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth and a hundredth instead")
    args = parser.parse_args()
    os.environ.update(FAKE)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    server = StandaloneKube()
    server.start()
    s3 = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    full = (100, 30, 5, 20) if args.quick else (1000, 30, 50, 200)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", server.url)
            for tag, sizes in (("tenth", tuple(max(1, n // 10) if i != 1 else n
                                               for i, n in enumerate(full))), ("full", full)):
                started = time.monotonic()
                buckets = seed(server, s3, tag, *sizes)
                print(f"seeded {tag} in {time.monotonic() - started:.1f}s", flush=True)
                endpoint = f"http://{host}:{port}"
                row = measure(server, endpoint, kubeconfig, buckets, sizes)  # type: ignore[arg-type]
                row.floor_ms = floor_ms(endpoint, buckets["longhorn"],
                                        [f"pvc-{tag}-{v:05d}" for v in range(sizes[0])])
                rows.append(row)
                server.on_loop(lambda: server.emulator.objects.clear())
    finally:
        server.stop()
        moto.stop()
    print(f"\n{'volumes':>8} {'backups':>8} {'CNPG':>5} {'etcd':>5} {'check s':>8} "
          f"{'S3 req':>7} {'kube req':>9} {'findings':>9} {'ms/req':>7} {'floor ms':>9} "
          f"{'ratio':>6}")
    for r in rows:
        per_request = r.seconds * 1000 / r.store_requests
        print(f"{r.volumes:>8} {r.volumes * r.backups:>8} {r.clusters:>5} {r.snapshots:>5} "
              f"{r.seconds:>8.2f} {r.store_requests:>7} {r.kube_requests:>9} {r.findings:>9} "
              f"{per_request:>7.2f} {r.floor_ms:>9.2f} {per_request / r.floor_ms:>6.2f}")
    small, big = rows
    print(f"\nobjects x{(big.volumes + big.clusters + 1) / (small.volumes + small.clusters + 1):.1f}"
          f": S3 requests x{big.store_requests / small.store_requests:.1f}, kube requests "
          f"x{big.kube_requests / max(small.kube_requests, 1):.1f}, time "
          f"x{big.seconds / small.seconds:.1f}; S3 requests per volume "
          f"{big.store_requests / big.volumes:.2f} (backups per volume: {big.backups})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""/dr readiness at homelab scale: 200 Longhorn volumes and 20 CloudNativePG clusters.

The simulated lab (its 6 volumes and 2 clusters) is grown to 200 volumes (3 replicas each, 3
backups each in the cluster and in the bucket) and 20 clusters (3 base backups and WAL files
each); seeding writes straight into the servers' stores and is not measured. Then:

1. Through a real `drbot worker`: `/dr readiness` as a person would ask it. Measured from the
   request to the first progress event in the job's stream (what the relay posts as the
   progress line; the platforms want an answer within 3 s) and to the report (job succeeded).
   The Kubernetes requests drbot made during the job are read from the lab's request log: every
   GET path is counted, and the most any one was repeated is shown.
2. In process, the same report with counting wrappers at drbot's adapter interface
   (lab/counting.py): per source, the distinct reads and the most repeats of any one.

Run: ``.venv/bin/python bench/readiness.py``. Prints the figures; exit 1 if a source was read
twice. It always ends (bench/ending.py): at its deadline, on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ending import Stop, deadline, lab_worker  # noqa: E402
from lab import Lab, files, world  # noqa: E402
from lab import store as lab_store  # noqa: E402
from lab.seed.cnpg import cnpg_objects  # noqa: E402
from lab.seed.longhorn import volume_objects  # noqa: E402
from lab.world import VolumeSpec  # noqa: E402

VOLUMES, CLUSTERS = 200, 20
NODES = ("k3s-server-1", "k3s-server-2", "k3s-server-3", "k3s-agent-1", "k3s-agent-2")
FIRST = "reading the backups, the preflights and what was measured"  # handlers/readiness.py


def s3_client(lab: Lab) -> Any:
    import boto3

    secret = dict(line.split("=", 1) for line in (lab.workdir / "secrets" / "s3-credentials")
                  .read_text().split())["secret_key"]
    return boto3.client("s3", endpoint_url=lab.s3_url, region_name=world.REGION,
                        aws_access_key_id=files.S3_ACCESS_KEY, aws_secret_access_key=secret)


def grow(lab: Lab) -> tuple[int, int]:
    """Add volumes and clusters until the lab holds VOLUMES and CLUSTERS; returns the counts."""
    now = datetime.now(UTC)
    s3 = s3_client(lab)
    have_vol = len(lab.world.kube_objects("longhorn.io/v1beta2", "volumes"))
    objects: list[dict[str, Any]] = []
    for i in range(VOLUMES - have_vol):
        nodes = [NODES[(i + k) % len(NODES)] for k in range(3)]
        vol = VolumeSpec(f"bench-{i:03d}", "bench", 1 + i % 20, None,
                         tuple((n, True) for n in nodes), (0.2, 1.2, 2.2))
        objects += volume_objects(vol, now)
        for key, body in lab_store.longhorn_volume_objects(vol, now, blocks=False).items():
            s3.put_object(Bucket=world.BUCKETS["longhorn"], Key=key, Body=body)
    template = [o for o in cnpg_objects(now) if "pg-main" in json.dumps(o)]
    stored = {k: v for k, v in lab_store.cnpg_objects(now).items() if k.startswith("pg-main/")}
    have_pg = len(lab.world.kube_objects("postgresql.cnpg.io/v1", "clusters"))
    for c in range(CLUSTERS - have_pg):
        name = f"pg-bench-{c:02d}"
        objects += [json.loads(json.dumps(copy.deepcopy(o)).replace("pg-main", name))
                    for o in template]
        for key, body in stored.items():
            s3.put_object(Bucket=world.BUCKETS["cnpg"], Key=key.replace("pg-main", name, 1),
                          Body=body)
    lab.world.put(objects)
    return (len(lab.world.kube_objects("longhorn.io/v1beta2", "volumes")),
            len(lab.world.kube_objects("postgresql.cnpg.io/v1", "clusters")))


def through_worker(lab: Lab, tmp: Path) -> dict[str, Any]:
    from bot.chat.core import Core, Request
    from bot.config.settings import Settings
    from bot.runtime import Runtime

    with lab_worker(lab.env, tmp):
        rt = Runtime.from_settings(Settings(), patient=False)
        core = Core(rt)
        warm = core.handle(Request("console", "console:alice", "/dr status", uuid.uuid4().hex))
        wait(rt, warm.job_id, 120)  # the worker is up and has imported drbot
        before = len(lab.world.kube_requests())
        asked = time.monotonic()
        reply = core.handle(Request("console", "console:alice", "/dr readiness",
                                    uuid.uuid4().hex))
        assert reply.job_id, reply.text
        first = None
        while True:
            if first is None and any(e.type == "progress" and e.message == FIRST
                                     for e in rt.events.read(reply.job_id)):
                first = time.monotonic() - asked
            job = rt.store.get(reply.job_id)
            if job.terminal:
                break
            time.sleep(0.02)
        report = time.monotonic() - asked
        if job.status != "succeeded":
            raise RuntimeError(f"readiness {job.status}: {job.error}")
        gets = Counter(r.path + "?" + json.dumps(r.query, sort_keys=True)
                       for r in lab.world.kube_requests()[before:] if r.method == "GET")
        result = next(s.result for s in job.steps if s.name == "readiness")
        counted, seconds = in_process()
        return {"progress": first, "report": report, "gets": gets, "objects": result["objects"],
                "png": len(rt.client.keys("drbot:file:*")), "counted": counted,
                "in_process": seconds}


def wait(rt: Any, job_id: str | None, timeout: float) -> None:
    give_up = time.monotonic() + timeout
    while job_id and not rt.store.get(job_id).terminal:
        if time.monotonic() > give_up:
            raise RuntimeError(f"job {job_id} did not end within {timeout:.0f}s")
        time.sleep(0.05)


def in_process() -> tuple[dict[str, tuple[int, int]], float]:
    from bot.config.settings import Settings
    from bot.readiness import report
    from bot.records.signing import Signer
    from bot.runtime import connect
    from lab.counting import CountingJobs, CountingServices, sources

    counts: Counter[tuple[str, str]] = Counter()
    settings = Settings()
    services = CountingServices(settings, counts)
    jobs = CountingJobs(connect(settings, patient=True), Signer(settings.key()), counts=counts)
    marks: list[tuple[str, float]] = []
    started = time.monotonic()
    report.build(services, jobs, lambda text: marks.append((text, time.monotonic())))
    ended = time.monotonic()
    for (text, at), (_, until) in zip(marks, [*marks[1:], ("", ended)], strict=True):
        print(f"  phase {text!r}: {until - at:.2f}s")
    return sources(counts), ended - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=900, help="seconds before it stops")
    args = parser.parse_args()
    repeated = False
    with tempfile.TemporaryDirectory() as tmp, deadline(args.deadline):
        try:
            with Lab(Path(tmp) / "lab", time_scale=0.1) as lab:
                started = time.monotonic()
                volumes, clusters = grow(lab)
                print(f"lab: {volumes} volumes, {clusters} CNPG clusters (seeded in "
                      f"{time.monotonic() - started:.1f}s)", flush=True)
                worker = through_worker(lab, Path(tmp))
                print(f"through a worker: progress line {worker['progress']:.2f}s, report "
                      f"{worker['report']:.2f}s after the request; {worker['objects']} objects "
                      f"in the report; pictures stored: {worker['png']}")
                gets = worker["gets"]
                print(f"Kubernetes GETs during the job: {sum(gets.values())} requests, "
                      f"{len(gets)} distinct, most repeated {max(gets.values())}x")
                repeated |= max(gets.values()) > 1
                per_source, seconds = worker["counted"], worker["in_process"]
                print(f"\nin process, counted at the adapter interface ({seconds:.2f}s):")
                print(f"{'source':<40} {'distinct reads':>15} {'most repeats':>13}")
                for name, (distinct, most) in sorted(per_source.items()):
                    print(f"{name:<40} {distinct:>15} {most:>13}")
                    repeated |= most > 1
        except Stop as exc:
            print(f"stopped: {exc}")
            return 1
    print("\neach source read once" if not repeated else "\nA SOURCE WAS READ MORE THAN ONCE")
    return 1 if repeated else 0


if __name__ == "__main__":
    sys.exit(main())

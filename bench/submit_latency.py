"""Submit → step-start latency through drbot's core, beside a bare rq floor; relay latency.

300 sequential `/dr noop` submissions through the core into a real `drbot worker`; the floor is a
bare rq enqueue of a no-op function into a plain rq worker set up the same way (forking, JSON
serializer, drbot's settings, files and handlers loaded before it forks, as `drbot worker` does:
a work horse forked from a larger process starts a few ms later, and that is rq's cost, not
drbot's), on the same Redis, in the same run: both workers stay up and the two take turns in
rounds. The relay's event → frontend latency is measured on
the same jobs with a frontend whose status-card throttle is 0.5 s. Prints a table; exits 0.
It always ends (``--deadline``, default 300 s; a job that never starts fails after 30 s), prints
what it measured so far and stops both workers (bench/ending.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ending import Stop, deadline, redis_server, spawn, stop  # noqa: E402
from bot.chat.app import BotApp  # noqa: E402
from bot.chat.core import Request  # noqa: E402
from bot.config.settings import Settings  # noqa: E402
from bot.records.events import STREAM, Event  # noqa: E402
from bot.records.queue import queue  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from lab.fakes.frontend import RecordingFrontend  # noqa: E402

N = 300
ROUNDS = 5
WARM_UP = 20
FLOOR_WORKER = """
import sys, redis, bench.noop
from bot.config.settings import Settings
from bot.worker.runner import prepare
from bot.runtime import Runtime
rt = Runtime.from_settings(Settings(), patient=True)
_ = rt.policy, rt.inventory
prepare(rt)
from rq import Queue, Worker
from rq.serializers import JSONSerializer
conn = redis.Redis.from_url(sys.argv[1])
Worker([Queue("floor", connection=conn, serializer=JSONSerializer)], connection=conn,
       serializer=JSONSerializer).work(logging_level="WARNING")
"""
POLICY = """
people: {bench: {accounts: ["console:bench"], roles: [admin]}}
commands: {noop: {allow: [admin]}}
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def wait(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark job did not finish")
        time.sleep(0.002)
    return value


def horse_started(client, rq_id: str) -> float:  # type: ignore[no-untyped-def]
    """When rq's work horse began the job (its ``started_at``, UTC, microseconds)."""
    from datetime import UTC, datetime

    raw = client.hget(f"rq:job:{rq_id}", "started_at") or b""
    stamp = datetime.strptime(raw.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return stamp.timestamp()


def step_started(client, job_id: str, worker: subprocess.Popen[bytes]) -> float:  # type: ignore[no-untyped-def]
    """Block on the job's event stream until its first step starts; return that event's time.
    Fails after 30 s, or at once when the worker has died."""
    last, give_up = "0-0", time.monotonic() + 30
    while True:
        if worker.poll() is not None or time.monotonic() > give_up:
            raise RuntimeError(f"job {job_id} did not start (worker "
                               + ("exited" if worker.poll() is not None else "alive") + ")")
        for _, entries in client.xread({STREAM + job_id: last}, block=1000) or []:
            for entry_id, raw in entries:
                last = entry_id
                event = Event.from_fields(entry_id.decode(), raw)
                if event.type == "step" and event.status == "running":
                    return event.at


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return spawn(args, env, Path(env["DRBOT_BENCH_LOGS"]) / f"{args[0].strip('-')}-worker.log", ROOT)


class Floor:
    """Bare rq: enqueue a no-op, wait until it has started. The same kind of worker as drbot's
    (forking, JSON), with the same code loaded before it forks: what rq itself costs."""

    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.worker = start(["-c", FLOOR_WORKER, url], env)
        self.client = __import__("redis").Redis.from_url(url)
        self.queue = queue(self.client, "floor")
        self.split: list[float] = []  # enqueue -> rq's started_at (the work horse began)

    def one(self) -> float:
        key = f"floor:{uuid.uuid4().hex}"
        t0 = time.time()
        job = self.queue.enqueue_call("bench.noop.touch", args=[key])
        popped = self.client.blpop([key], timeout=30)
        if popped is None:
            raise RuntimeError("the floor worker did not run its job within 30 s")
        self.split.append(horse_started(self.client, job.id) - t0)
        return float(popped[1]) - t0

    def close(self) -> None:
        stop(self.worker)


class Drbot:
    """`/dr noop` through the core (with its thread opened, as a frontend does) into a real
    `drbot worker`, until the step's start event; the relay runs in this process."""

    def __init__(self, env: dict[str, str]) -> None:
        os.environ.update(env)
        self.rt = Runtime.from_settings(Settings(), patient=False)
        self.frontend = RecordingFrontend(throttle=0.5)
        self.app = BotApp(self.rt, {"console": self.frontend})
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.app.start(self.loop)
        self.worker = start(["-m", "bot.cli", "worker"], env)
        self.split: list[float] = []  # submit -> rq's started_at (the work horse began)

    def one(self) -> float:
        t0 = time.time()
        reply = self.app.core.handle(Request("console", "console:bench", "/dr noop",
                                             uuid.uuid4().hex))
        assert reply.job_id, reply.text
        asyncio.run_coroutine_threadsafe(self.app.open_thread(self.frontend, "bench", reply),
                                         self.loop).result()
        at = step_started(self.rt.client, reply.job_id, self.worker)
        wait(lambda: self.rt.store.get(reply.job_id).terminal)
        self.split.append(horse_started(self.rt.client, f"drbot-{reply.job_id}-0-plan") - t0)
        return at - t0

    def lags(self) -> list[float]:
        wait(lambda: not self.rt.client.scard("drbot:relay:active"), timeout=60)
        return list(self.app.relay.lags) if self.app.relay else []

    def close(self) -> None:
        try:
            self.app.stop()
        finally:
            stop(self.worker)


def measure(url: str, env: dict[str, str], base: list[float], mine: list[float],
            lags: list[float], splits: dict[str, list[float]]) -> None:
    """Alternating rounds, so that whatever else the machine does weighs on both alike; the
    figures go into the lists as they come, so a stopped run still shows them."""
    floor = Floor(url, env)
    try:
        ours = Drbot(env)
        try:
            for _ in range(WARM_UP):
                floor.one()
                ours.one()
            floor.split.clear()
            ours.split.clear()
            splits["floor"], splits["drbot"] = floor.split, ours.split
            for _ in range(ROUNDS):
                base += [floor.one() for _ in range(N // ROUNDS)]
                mine += [ours.one() for _ in range(N // ROUNDS)]
            lags += ours.lags()
        finally:
            ours.close()
    finally:
        floor.close()


def row(name: str, values: list[float], floor_values: list[float] | None = None) -> str:
    med, p99 = statistics.median(values) * 1000, pct(values, 99) * 1000
    ratio = ""
    if floor_values:
        base_med, base_p99 = statistics.median(floor_values) * 1000, pct(floor_values, 99) * 1000
        ratio = f"{med / base_med:6.2f}x {p99 / base_p99:6.2f}x"
    return f"{name:<34} {med:9.1f} {p99:9.1f}  {ratio}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds before it stops")
    args = parser.parse_args()
    base: list[float] = []
    ours: list[float] = []
    lags: list[float] = []
    splits: dict[str, list[float]] = {}
    stopped = ""
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        env = dict(os.environ, DRBOT_SIGNING_KEY="b" * 64, DRBOT_POLICY=str(policy),
                   DRBOT_PLUGINS='["bench.noop"]', DRBOT_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
                   DRBOT_REDIS_ALLOW_NO_PASSWORD="true", DRBOT_BENCH_LOGS=tmp,
                   DRBOT_STATE_DIR=str(Path(tmp) / "worker-state"),
                   DRBOT_RATE_PERSON_PER_MINUTE="1000000", DRBOT_RATE_GLOBAL_PER_MINUTE="1000000")
        try:
            with deadline(args.deadline):
                server, env["REDIS_URL"] = redis_server(Path(tmp))
                measure(env["REDIS_URL"], env, base, ours, lags, splits)
        except (Stop, RuntimeError, TimeoutError) as exc:
            stopped = str(exc)
            for log in sorted(Path(tmp).glob("*worker.log")):
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                if tail:
                    print(f"{log.name}: " + " | ".join(tail))
        finally:
            if server is not None:
                stop(server)
    if stopped:
        print(f"STOPPED: {stopped}; figures so far ({len(base)} floor, {len(ours)} drbot):")
    print(f"{N} sequential submissions each, in {ROUNDS} alternating rounds after {WARM_UP} "
          "warm-up ones; 1 forking worker each, Redis on 127.0.0.1")
    print(f"{'':<34} {'median ms':>9} {'p99 ms':>9}  {'ratio (median, p99)'}")
    if base:
        print(row("floor: bare rq enqueue -> start", base))
    if base and ours:
        print(row("drbot: submit -> step start", ours, base))
    if lags:
        print(row("relay: event -> frontend", lags))
    floor_split, our_split = splits.get("floor", []), splits.get("drbot", [])
    if floor_split and our_split:
        print("where the time goes (rq's started_at: the work horse began the job):")
        print(row("floor: enqueue -> horse start", floor_split))
        print(row("drbot: submit -> horse start", our_split, floor_split))
        n = min(len(base), len(floor_split))
        print(row("floor: horse start -> job ran", [b - f for b, f in zip(base[:n], floor_split[:n],
                                                                         strict=True)]))
        n = min(len(ours), len(our_split))
        print(row("drbot: horse start -> step start", [o - f for o, f in zip(
            ours[:n], our_split[:n], strict=True)]))
    print("relay target: p99 <= throttle (500 ms) + 100 ms")
    return 1 if stopped else 0


if __name__ == "__main__":
    sys.exit(main())

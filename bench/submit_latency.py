"""Submit → step-start latency through drbot's core, beside a bare rq floor; relay latency.

300 sequential `/dr noop` submissions through the core into a real `drbot worker`; the floor is a
bare rq enqueue of a no-op function into a plain rq worker set up the same way (forking, JSON
serializer, drbot's settings, files and handlers loaded before it forks, as `drbot worker` does:
a work horse forked from a larger process starts a few ms later, and that is rq's cost, not
drbot's), on the same Redis, in the same run: both workers stay up and the two take turns in
rounds. The relay's event → frontend latency is measured on
the same jobs with a frontend whose status-card throttle is 0.5 s. Prints a table; exits 0.
"""

from __future__ import annotations

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

from bot.chat.app import BotApp  # noqa: E402
from bot.chat.core import Request  # noqa: E402
from bot.config.settings import Settings  # noqa: E402
from bot.private_redis import PrivateRedis  # noqa: E402
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


def step_started(client, job_id: str) -> float:  # type: ignore[no-untyped-def]
    """Block on the job's event stream until its first step starts; return that event's time."""
    last = "0-0"
    while True:
        for _, entries in client.xread({STREAM + job_id: last}, block=30000) or []:
            for entry_id, raw in entries:
                last = entry_id
                event = Event.from_fields(entry_id.decode(), raw)
                if event.type == "step" and event.status == "running":
                    return event.at


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env=env, cwd=ROOT)


class Floor:
    """Bare rq: enqueue a no-op, wait until it has started. The same kind of worker as drbot's
    (forking, JSON), with the same code loaded before it forks: what rq itself costs."""

    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.worker = start(["-c", FLOOR_WORKER, url], env)
        self.client = __import__("redis").Redis.from_url(url)
        self.queue = queue(self.client, "floor")

    def one(self) -> float:
        key = f"floor:{uuid.uuid4().hex}"
        t0 = time.time()
        self.queue.enqueue_call("bench.noop.touch", args=[key])
        return float(self.client.blpop([key], timeout=30)[1]) - t0

    def close(self) -> None:
        self.worker.terminate()
        self.worker.wait(10)


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

    def one(self) -> float:
        t0 = time.time()
        reply = self.app.core.handle(Request("console", "console:bench", "/dr noop",
                                             uuid.uuid4().hex))
        assert reply.job_id, reply.text
        asyncio.run_coroutine_threadsafe(self.app.open_thread(self.frontend, "bench", reply),
                                         self.loop).result()
        at = step_started(self.rt.client, reply.job_id)
        wait(lambda: self.rt.store.get(reply.job_id).terminal)
        return at - t0

    def lags(self) -> list[float]:
        wait(lambda: not self.rt.client.scard("drbot:relay:active"), timeout=60)
        return list(self.app.relay.lags) if self.app.relay else []

    def close(self) -> None:
        self.app.stop()
        self.worker.terminate()
        self.worker.wait(10)


def measure(url: str, env: dict[str, str]) -> tuple[list[float], list[float], list[float]]:
    """Alternating rounds, so that whatever else the machine does weighs on both alike."""
    floor, ours = Floor(url, env), Drbot(env)
    try:
        for _ in range(WARM_UP):
            floor.one()
            ours.one()
        base: list[float] = []
        mine: list[float] = []
        for _ in range(ROUNDS):
            base += [floor.one() for _ in range(N // ROUNDS)]
            mine += [ours.one() for _ in range(N // ROUNDS)]
        return base, mine, ours.lags()
    finally:
        floor.close()
        ours.close()


def row(name: str, values: list[float], floor_values: list[float] | None = None) -> str:
    med, p99 = statistics.median(values) * 1000, pct(values, 99) * 1000
    ratio = ""
    if floor_values:
        base_med, base_p99 = statistics.median(floor_values) * 1000, pct(floor_values, 99) * 1000
        ratio = f"{med / base_med:6.2f}x {p99 / base_p99:6.2f}x"
    return f"{name:<34} {med:9.1f} {p99:9.1f}  {ratio}"


def main() -> int:
    server = PrivateRedis()
    url = server.start()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        env = dict(os.environ, REDIS_URL=url, DRBOT_SIGNING_KEY="b" * 64, DRBOT_POLICY=str(policy),
                   DRBOT_PLUGINS='["bench.noop"]', DRBOT_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
                   DRBOT_REDIS_ALLOW_NO_PASSWORD="true",
                   DRBOT_RATE_PERSON_PER_MINUTE="1000000", DRBOT_RATE_GLOBAL_PER_MINUTE="1000000")
        try:
            base, ours, lags = measure(url, env)
        finally:
            server.stop()
    print(f"{N} sequential submissions each, in {ROUNDS} alternating rounds after {WARM_UP} "
          "warm-up ones; 1 forking worker each, Redis on 127.0.0.1")
    print(f"{'':<34} {'median ms':>9} {'p99 ms':>9}  {'ratio (median, p99)'}")
    print(row("floor: bare rq enqueue -> start", base))
    print(row("drbot: submit -> step start", ours, base))
    print(row("relay: event -> frontend", lags))
    print("relay target: p99 <= throttle (500 ms) + 100 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

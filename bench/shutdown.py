"""SIGTERM → exit of an idle `drbot worker`, beside a bare rq worker (the floor), and of a busy
`drbot worker` whose job checkpoints; the `drbot scheduler` too.

Each process is started, waited for until it is idle (rq state ``idle``: past its signal
handlers), sent SIGTERM, and timed until it has exited. The floor is a plain ``rq.Worker`` on the
same Redis: its stop waits out rq's 60 s read of the command channel whenever the UNSUBSCRIBE
reply wakes that read too early. Prints a table; exits 0.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bot.private_redis import PrivateRedis  # noqa: E402

N = 12
FLOOR = """
import sys, redis
from rq import Queue, Worker
conn = redis.Redis.from_url(sys.argv[1])
Worker([Queue("floor", connection=conn)], connection=conn).work(logging_level="WARNING")
"""
POLICY = """
people: {bench: {accounts: ["console:bench"], roles: [admin]}}
commands: {}
"""


def idle(client: redis.Redis) -> bool:
    return any(client.hget(key, "state") == b"idle" for key in client.smembers("rq:workers"))


def wait(predicate, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("bench: timed out waiting for the process to start")
        time.sleep(0.02)


def timed_stop(argv: list[str], env: dict[str, str], ready) -> float:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait(ready)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return float("inf")
    return time.monotonic() - start


def row(name: str, values: list[float]) -> str:
    return (f"{name:<34} {len(values):>3} {statistics.median(values):>8.2f} "
            f"{max(values):>8.2f} {sum(v > 2 for v in values):>7}")


def main() -> int:
    server = PrivateRedis()
    url = server.start()
    client = redis.Redis.from_url(url)
    tmp = Path(tempfile.mkdtemp(prefix="drbot-bench-"))
    (tmp / "policy.yaml").write_text(POLICY)
    env = dict(os.environ, REDIS_URL=url, DRBOT_SIGNING_KEY="b" * 64,
               DRBOT_POLICY=str(tmp / "policy.yaml"), DRBOT_REDIS_ALLOW_NO_PASSWORD="true",
               DRBOT_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    results: dict[str, list[float]] = {"rq worker (floor), idle": [], "drbot worker, idle": [],
                                       "drbot scheduler": []}
    try:
        for _ in range(N):  # alternate, so both see the same load
            client.flushall()
            results["rq worker (floor), idle"].append(
                timed_stop([sys.executable, "-c", FLOOR, url], env, lambda: idle(client)))
            client.flushall()
            results["drbot worker, idle"].append(
                timed_stop([sys.executable, "-m", "bot.cli", "worker"], env,
                           lambda: idle(client)))
        for _ in range(3):
            client.flushall()
            results["drbot scheduler"].append(
                timed_stop([sys.executable, "-m", "bot.cli", "scheduler"], env,
                           lambda: client.zcard("drbot:jobs") > 0))
    finally:
        server.stop()
    print(f"{'SIGTERM -> exit (seconds)':<34} {'n':>3} {'median':>8} {'max':>8} {'over 2s':>7}")
    for name, values in results.items():
        print(row(name, values))
    return 0


if __name__ == "__main__":
    sys.exit(main())

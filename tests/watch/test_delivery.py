"""Alert delivery (threads, cursor), the scheduler's one-check-per-interval, metrics, heartbeat."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from bot.chat.frontends.base import Frontend, ThreadRef
from bot.chat.render import Card
from bot.records.signing import Signer
from bot.watch import gauges, notify, ping
from bot.watch.alert_states import EVENTS, FINDINGS, LAST, AlertEvent
from bot.watch.scheduler import WatchScheduler
from lab.fakes.frontend import KEY
from tests.bot.harness import Harness

SIGNER = Signer(KEY.encode())


class AlertFrontend(Frontend):
    """Records each alert with the thread it was posted in; can be made to fail."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.posts: list[tuple[str, str, ThreadRef | None]] = []
        self.down = False

    async def open_thread(self, channel: str, card: Card) -> ThreadRef:
        raise NotImplementedError

    async def update_card(self, thread: ThreadRef, card: Card) -> None:
        raise NotImplementedError

    async def reply(self, thread: ThreadRef, text: str) -> None:
        raise NotImplementedError

    async def alert(self, channel: str, text: str, thread: ThreadRef | None = None) -> ThreadRef:
        if self.down:
            raise ConnectionError("platform down")
        self.posts.append((channel, text, thread))
        return {"ts": f"{self.name}-{len(self.posts)}"}


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def add(client: redis.Redis, *events: AlertEvent) -> None:
    for event in events:
        client.xadd(EVENTS, event.sealed(SIGNER))


def test_reminders_and_recovery_go_in_the_alert_thread_on_every_frontend(
        client: redis.Redis) -> None:
    slack, discord = AlertFrontend("slack"), AlertFrontend("discord")
    fronts = {"slack": slack, "discord": discord}
    channels = {"slack": "C1", "discord": "99", "console": "ignored: not running"}
    add(client, AlertEvent("longhorn:v@1", "missed", "missed v"), AlertEvent("etcd:etcd@1", "missed", "e"))
    assert notify.deliver(client, fronts, channels, asyncio.run, SIGNER) == 4
    discord.down = True
    add(client, AlertEvent("longhorn:v@1", "reminder", "still"),
        AlertEvent("longhorn:v@1", "recovered", "ok"))
    assert notify.deliver(client, fronts, channels, asyncio.run, SIGNER) == 2  # slack only
    assert [(c, t, th) for c, t, th in slack.posts] == [
        ("C1", "missed v", None), ("C1", "e", None),
        ("C1", "still", {"ts": "slack-1"}), ("C1", "ok", {"ts": "slack-1"})]
    discord.down = False
    assert notify.deliver(client, fronts, channels, asyncio.run, SIGNER) == 2  # resumes where it stopped
    assert [th for _, _, th in discord.posts[2:]] == [{"ts": "discord-1"}] * 2
    assert notify.deliver(client, fronts, channels, asyncio.run, SIGNER) == 0  # a restart repeats nothing


def test_two_schedulers_enqueue_one_check_per_interval(redis_url: str, tmp_path: Path) -> None:
    harness = Harness(redis_url, tmp_path)
    try:
        replicas = [WatchScheduler(harness.rt, interval=60), WatchScheduler(harness.rt, interval=60)]
        created: list[str] = []
        barrier = threading.Barrier(2)

        def run(scheduler: WatchScheduler) -> None:
            for second in range(0, 600, 7):  # ten intervals, ticking every 7 s
                barrier.wait()
                job = scheduler.tick(1_800_000_000 + second)
                if job:
                    created.append(job)
        threads = [threading.Thread(target=run, args=(s,)) for s in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(created) == 10
        jobs = [harness.rt.store.get(j) for j in created]
        assert {j.command for j in jobs} == {"backup-check"}
        assert {j.account for j in jobs} == {"system:scheduler"}
        assert replicas[0].queue.count == 10  # each record enqueued in its own transaction
    finally:
        harness.close()


def test_metrics_come_from_the_latest_findings(client: redis.Redis) -> None:
    import json
    import time

    now = time.time()
    client.hset(FINDINGS, "longhorn:pvc-1", json.dumps(
        {"kind": "longhorn", "label": "apps/archive", "status": "missed", "last_good_at": now - 3600}))
    client.set(LAST, json.dumps({"at": now, "sights": {"store:cnpg": {"ok": False}}}))
    registry = CollectorRegistry()
    gauges.install(client, registry)
    text = generate_latest(registry).decode()
    assert 'drbot_backup_ok{kind="longhorn",name="apps/archive"} 0.0' in text
    age = next(line for line in text.splitlines()
               if line.startswith('drbot_backup_age_seconds{kind="longhorn"'))
    assert 3600 <= float(age.split()[-1]) < 3700
    assert 'drbot_backup_watch_blind{side="store:cnpg"} 1.0' in text


class Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        Counter.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_heartbeat_is_pinged_and_a_failure_is_not_raised() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert ping.ping(f"http://127.0.0.1:{server.server_port}/ping/abc")
        assert Counter.hits == ["/ping/abc"]
    finally:
        server.shutdown()
    assert ping.ping(f"http://127.0.0.1:{server.server_port}/ping/abc", timeout=1) is False
    assert ping.ping(None) is False

"""A whole drbot (core, relay, reaper, worker subprocesses) against the test Redis.

The frontend here is a real implementation of the neutral Frontend interface that records what a
thread would show; the worker is the real `drbot worker` in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import redis

from bot.chat.app import BotApp
from bot.chat.core import Reply, Request
from bot.chat.frontends.base import Frontend, ThreadRef
from bot.chat.render import Card
from bot.config.settings import Settings
from bot.records.jobs import Job
from bot.runtime import Runtime
from tests.support import wait_until

KEY = "k" * 64
POLICY = """
admin_contact: "alice (#ops)"
people:
  alice: {accounts: ["console:alice", "slack:T1/UALICE"], roles: [admin]}
  bob: {accounts: ["console:bob", "discord:2002"], roles: [admin]}
  carol: {accounts: ["console:carol"], roles: [operator]}
  dave: {accounts: ["console:dave"], roles: [viewer]}
commands:
  help: {allow: [viewer, operator, admin]}
  jobs: {allow: [viewer, operator, admin]}
  job: {allow: [viewer, operator, admin]}
  status: {allow: [viewer, operator, admin]}
  reconcile: {allow: [operator, admin]}
  cancel: {allow: [operator, admin]}
  retry: {allow: [operator, admin]}
  approve: {allow: [operator, admin]}
  deny: {allow: [operator, admin]}
  drill: {allow: [operator, admin]}
  drill-gated: {allow: [operator, admin], approvals: 1, approvers: ["role:admin"], expires: 1h}
lab: true
"""




def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class RecordingFrontend(Frontend):
    """Keeps each job thread: the status card's versions and the replies, in order."""

    name = "console"

    def __init__(self, throttle: float = 0.2) -> None:
        self.throttle = throttle
        self.threads: dict[str, dict[str, list[Any]]] = {}
        self.opened: list[str] = []
        self.alerts: list[str] = []

    async def open_thread(self, channel: str, card: Card) -> ThreadRef:
        self.opened.append(card.job_id)
        self.threads[card.job_id] = {"cards": [card], "replies": []}
        return {"job": card.job_id}

    async def update_card(self, thread: ThreadRef, card: Card) -> None:
        self.threads[thread["job"]]["cards"].append(card)

    async def reply(self, thread: ThreadRef, text: str) -> None:
        self.threads[thread["job"]]["replies"].append(text)

    async def alert(self, channel: str, text: str, thread: ThreadRef | None = None) -> ThreadRef:
        self.alerts.append(text)
        return {"job": "alert"}

    def replies(self, job_id: str) -> list[str]:
        return list(self.threads.get(job_id, {}).get("replies", []))

    def last_card(self, job_id: str) -> Card:
        return self.threads[job_id]["cards"][-1]


class Harness:
    def __init__(self, redis_url: str, tmp: Path, **overrides: Any) -> None:
        policy = tmp / "policy.yaml"
        policy.write_text(overrides.pop("policy_text", POLICY))
        self.env = {
            "REDIS_URL": redis_url, "DRBOT_SIGNING_KEY": KEY, "DRBOT_POLICY": str(policy),
            "DRBOT_PLUGINS": '["tests.bot.drill"]', "DRBOT_HEARTBEAT_SECONDS": "0.3",
            "DRBOT_LOST_AFTER_SECONDS": "5", "DRBOT_CANCEL_GRACE_SECONDS": "1",
            "DRBOT_LOG_JSON": "false", "DRBOT_LOG_LEVEL": "WARNING",
            "DRBOT_REDIS_ALLOW_NO_PASSWORD": "true",
            **{k: str(v) for k, v in overrides.items()}}
        self._saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        self.settings = Settings()
        self.rt = Runtime.from_settings(self.settings, patient=False)
        self.frontend = RecordingFrontend()
        self.app = BotApp(self.rt, {"console": self.frontend})
        self.loop = asyncio.new_event_loop()
        self.loop_thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.loop_thread.start()
        self.workers: list[subprocess.Popen[bytes]] = []
        self.redis = redis.Redis.from_url(redis_url)

    # -- processes ------------------------------------------------------------------------------
    def start_worker(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, **self.env, PYTHONPATH=str(Path(__file__).parents[2]))
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env,
                                start_new_session=True)
        self.workers.append(proc)
        return proc

    def start_relay(self) -> None:
        self.app.start(self.loop)

    def stop_relay(self) -> None:
        self.app.stop()

    def kill_workers(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill each worker and its work horses (rq puts a horse in its own process group);
        grandchildren in their own sessions, like a playbook, survive as they would for real."""
        for proc in self.workers:
            if proc.poll() is None:
                for pid in [*children(proc.pid), proc.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                proc.wait(10)
        self.workers.clear()

    def close(self) -> None:
        self.stop_relay()
        self.kill_workers(signal.SIGTERM)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.loop_thread.join(5)
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # -- chat -----------------------------------------------------------------------------------
    def say(self, text: str, who: str = "alice", request_id: str | None = None) -> Reply:
        account = who if ":" in who else f"console:{who}"
        request = Request("console", account, text, request_id or uuid.uuid4().hex)
        reply = self.app.core.handle(request)
        if reply.job_id:
            asyncio.run_coroutine_threadsafe(
                self.app.open_thread(self.frontend, "test", reply), self.loop).result(10)
        return reply

    def job(self, job_id: str) -> Job:
        return self.rt.store.get(job_id)

    def wait_status(self, job_id: str, *statuses: str, timeout: float = 20) -> Job:
        return wait_until(lambda: (j := self.job(job_id)).status in statuses and j,
                          timeout, f"job {job_id} to be {'/'.join(statuses)}")

    def wait_reply(self, job_id: str, needle: str, timeout: float = 20) -> str:
        return wait_until(lambda: next((r for r in self.frontend.replies(job_id) if needle in r),
                                       None), timeout, f"a reply containing {needle!r}")

    def wait_settled(self, job_id: str, timeout: float = 20) -> None:
        """Until the relay has delivered the job's last event and let go of it."""
        wait_until(lambda: self.job(job_id).terminal and
                   not self.redis.sismember("drbot:relay:active", job_id), timeout,
                   f"the relay to finish job {job_id}")

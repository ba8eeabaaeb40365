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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from bot.chat import relay
from bot.chat.app import BotApp
from bot.chat.core import Reply, Request
from bot.config.settings import Settings
from bot.records.jobs import Job
from bot.runtime import Runtime
from lab.fakes.frontend import KEY, POLICY, RecordingFrontend
from tests.support import children, die_with_parent, stop_process, wait_until


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
            "DRBOT_STATE_DIR": str(tmp / "worker-state"),
            "DRBOT_RATE_PERSON_PER_MINUTE": "100", "DRBOT_RATE_GLOBAL_PER_MINUTE": "500",
            **{k: str(v) for k, v in overrides.items()}}
        self._saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            self.settings = Settings()
            self.rt = Runtime.from_settings(self.settings, patient=False)
        except BaseException:
            self.restore_environment()
            raise
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
                                start_new_session=True, preexec_fn=die_with_parent)
        self.workers.append(proc)
        return proc

    def start_relay(self) -> None:
        self.app.start(self.loop)

    def stop_relay(self) -> None:
        self.app.stop()

    def kill_workers(self) -> None:
        """SIGKILL each worker and its work horses at once (rq puts a horse in its own process
        group), as a machine dying would; grandchildren in their own sessions, like a
        playbook, survive as they would for real."""
        for proc in self.workers:
            if proc.poll() is None:
                for pid in [*children(proc.pid), proc.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                proc.wait()
        self.workers.clear()

    def stop_workers(self) -> list[bool]:
        """SIGTERM every worker at once, as systemd or Kubernetes stops them, then wait for each
        (SIGKILL after its deadline). Whether each exited on its own."""
        for proc in self.workers:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        exited = [stop_process(proc) for proc in self.workers]
        self.workers.clear()
        return exited

    def close(self) -> None:
        """Stop everything this harness started and restore the environment, whatever fails."""
        try:
            with contextlib.suppress(Exception):
                self.stop_relay()
            self.stop_workers()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.loop_thread.join(5)
            self.redis.close()
            self.restore_environment()

    def restore_environment(self) -> None:
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
        wait_until(lambda: relay.settled(self.redis, self.job(job_id)), timeout,
                   f"the relay to finish job {job_id}")


@contextlib.contextmanager
def core_with_rules(redis_url: str, tmp: Path, inventory: str, rules: str) -> Iterator[Harness]:
    """A core and relay, no worker, with the lab inventory and ``rules`` added to the test policy
    (they stand in for its ``exercise-gated:`` line, which they must end with)."""
    path = tmp / "inventory.yaml"
    path.write_text(inventory)
    harness = Harness(redis_url, tmp, DRBOT_INVENTORY=str(path),
                      policy_text=POLICY.replace("  exercise-gated:", rules))
    harness.start_relay()
    try:
        yield harness
    finally:
        harness.close()

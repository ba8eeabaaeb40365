"""The running job's companion thread: proves the job alive, renews its locks, and stops it.

Every tick it looks for a cancel request and for the job's own timeout. Stopping is cooperative
first (steps poll ``cancel_reason``; children get SIGINT, which lets Terraform release its state
lock), then firm (children's trees are ended after the grace period), then final (a step that still
has not returned is abandoned: the record says so, the locks are freed and the work horse exits).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from bot.records import signals
from bot.records.jobs import Job
from bot.records.locks import LockKey
from bot.worker import pids

if TYPE_CHECKING:
    from bot.runtime import Runtime

TICK = 0.2
INTERRUPTED = "interrupted: the worker was asked to stop"
# Set in a work horse by its SIGTERM handler (bot.worker.shutdown): the running step must checkpoint.
STOPPING = threading.Event()
log = logging.getLogger("drbot.heartbeat")


class Heartbeat(threading.Thread):
    def __init__(self, rt: Runtime, job: Job, keys: list[LockKey],
                 on_hard_stop: Callable[[Job, str], None], spawned: list[int]) -> None:
        super().__init__(name=f"heartbeat-{job.id}", daemon=True)
        self.rt, self.job, self.keys, self.on_hard_stop = rt, job, keys, on_hard_stop
        self.spawned = spawned  # the runner's list of the subprocesses this attempt started
        self.cancel_reason: str | None = INTERRUPTED if STOPPING.is_set() else None
        self._halt = threading.Event()
        self._deadline = time.time() + job.timeout
        self._cancel_at = 0.0

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(5)

    def run(self) -> None:
        settings = self.rt.settings
        next_beat = 0.0
        while not self._halt.wait(TICK):
            try:
                self._watch_cancel(settings.cancel_grace_seconds)
                now = time.monotonic()
                if now >= next_beat:
                    ttl = settings.lost_after_seconds
                    signals.prove_alive(self.rt.client, self.job.id, ttl)
                    self.rt.locks.renew(self.job.id, self.keys, ttl)
                    next_beat = now + settings.heartbeat_seconds
            except redis.RedisError as exc:
                log.warning("heartbeat for job %s: %s", self.job.id, exc,
                            extra={"job_id": self.job.id})

    def _watch_cancel(self, grace: float) -> None:
        if self.cancel_reason is None:
            who = None if STOPPING.is_set() else signals.cancel_requested_by(self.rt.client,
                                                                             self.job.id)
            if STOPPING.is_set():
                self.cancel_reason = INTERRUPTED
            elif who:
                self.cancel_reason = f"cancelled by {who}"
            elif time.time() > self._deadline:
                self.cancel_reason = f"timed out after {self.job.timeout}s"
            if self.cancel_reason:
                self._cancel_at = time.monotonic()
                pids.signal_all(self.rt.client, self.job.id, signal.SIGINT, self.spawned)
            return
        waited = time.monotonic() - self._cancel_at
        if waited > grace:
            pids.end_all(self.rt.client, self.job.id, 2.0, self.spawned)
        if waited > 2 * grace + 5:
            log.error("job %s: step ignored cancellation; abandoning it", self.job.id,
                      extra={"job_id": self.job.id})
            self.on_hard_stop(self.job, self.cancel_reason)
            os._exit(1)

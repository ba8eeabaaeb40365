"""`drbot scheduler`: enqueue the backup check once per interval, however many replicas run.

Time is cut into slots of `backups.check_interval_seconds`; slot ``n`` is ``floor(now / interval)``.
Every replica tries to create the signed job record of slot ``n`` with the request id
``backup-check:<interval>:<n>``; JobStore.create dedupes on that id inside the same transaction
that enqueues the job, so exactly one replica wins each slot and a crash never leaves a record
without its queue entry (or the reverse).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from bot import registry
from bot.errors import ConfigError
from bot.records.jobs import Job, new_id
from bot.records.queue import enqueue, queue
from bot.runtime import Runtime

COMMAND = "backup-check"
VERIFY_COMMAND = "verify-next"  # the verification rotation, when backups.verify_every is set
VERIFY_INTERVAL = 3600  # one rotation job per hour; it verifies one object if one is due
FRONTEND = "system"
MAX_INTERVAL = 86400  # request ids are remembered for a day
log = logging.getLogger("drbot.scheduler")


class Scheduler:
    def __init__(self, rt: Runtime, interval: int | None = None) -> None:
        self.rt = rt
        self.interval = int(interval or rt.inventory.backups.check_interval_seconds)
        if not 10 <= self.interval <= MAX_INTERVAL:
            raise ConfigError(f"inventory: backups.check_interval_seconds={self.interval} must be "
                              f"between 10 and {MAX_INTERVAL}")
        self.queue = queue(rt.client, rt.settings.queue)
        registry.load(rt.settings.plugins)
        self.timeout = registry.COMMANDS[COMMAND].timeout

    def slot(self, now: float) -> int:
        return int(now // self.interval)

    def tick(self, now: float) -> str | None:
        """Enqueue the check of ``now``'s slot unless some replica did; the job id if we did.
        With ``backups.verify_every`` set, also the hour's verification rotation job."""
        if self.rt.inventory.backups.verify_every > 0:
            self._enqueue(VERIFY_COMMAND, f"{VERIFY_COMMAND}:{int(now // VERIFY_INTERVAL)}", now)
        return self._enqueue(COMMAND, f"{COMMAND}:{self.interval}:{self.slot(now)}", now)

    def _enqueue(self, command: str, request_id: str, now: float) -> str | None:
        job = Job(new_id(), command, {}, "scheduler", registry.SYSTEM, FRONTEND, request_id,
                  timeout=registry.COMMANDS[command].timeout)
        job, created = self.rt.store.create(job, lambda pipe, j: enqueue(self.queue, pipe, j,
                                                                          "plan"))
        if created:
            log.info("%s %s enqueued for slot %s", command, job.id, self.slot(now),
                     extra={"job_id": job.id})
        return job.id if created else None

    def wait(self, now: float) -> float:
        """Seconds until the next slot starts (capped, so a clock jump is noticed soon)."""
        return min(max((self.slot(now) + 1) * self.interval - now, 0.05), 30.0)


def run(rt: Runtime, stop: threading.Event | None = None) -> int:
    """Tick until SIGTERM/SIGINT (or ``stop``); a Redis outage is logged and ridden out."""
    import redis

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    scheduler = Scheduler(rt)
    log.info("backup scheduler: one check every %ss", scheduler.interval)
    while not stop.is_set():
        now = time.time()
        try:
            scheduler.tick(now)
        except redis.RedisError as exc:
            log.warning("backup scheduler: redis unavailable (%s); retrying", exc)
            stop.wait(2.0)
            continue
        stop.wait(scheduler.wait(time.time()))
    return 0

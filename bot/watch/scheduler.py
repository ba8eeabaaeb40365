"""`drbot scheduler`: enqueue the backup check once per interval, however many replicas run.

Time is cut into slots of `backups.check_interval_seconds`; slot ``n`` is ``floor(now / interval)``.
Every replica tries to create the signed job record of slot ``n`` with the request id
``backup-check:<interval>:<n>``; JobStore.create dedupes on that id inside the same transaction
that enqueues the job, so exactly one replica wins each slot and a crash never leaves a record
without its queue entry (or the reverse).

The same mechanism enqueues the doctor's daily run (``doctor-check``, slots of a day): a
credential that broke is found, and alerted, within a day.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from rq import Queue

from bot import registry
from bot.errors import ConfigError
from bot.records.jobs import Job, new_id
from bot.records.queue import enqueue, queue
from bot.runtime import Runtime

COMMAND = "backup-check"
DOCTOR = "doctor-check"  # handlers/doctor.py: a broken credential alerts within a day
DOCTOR_INTERVAL = 86400
VERIFY_COMMAND = "verify-next"  # the verification rotation, when backups.verify_every is set
VERIFY_INTERVAL = 3600  # one rotation job per hour; it verifies one object if one is due
DRILL_COMMAND = "drill-next"  # the drill rotation, when backups.drill_every is set
DRILL_INTERVAL = 3600
SWEEP_COMMAND = "drill-sweep"  # drill namespaces whose job is over or overdue are deleted
SWEEP_INTERVAL = 900
READINESS_COMMAND = "readiness-report"  # the readiness report, every backups.readiness_every days
FRONTEND = "system"
MAX_INTERVAL = 86400  # request ids are remembered for a day
log = logging.getLogger("drbot.scheduler")


class WatchScheduler:
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

    def tick(self, now: float, command: str = COMMAND, interval: int | None = None
             ) -> str | None:
        """Enqueue ``command`` for ``now``'s slot of ``interval`` (default: the backup check's)
        unless some replica did; the job id if we did."""
        interval = interval or self.interval
        slot = int(now // interval)
        return submit_system(self.rt, command, f"{command}:{interval}:{slot}", self.queue)

    def tick_all(self, now: float) -> list[str]:
        """The backup check of this slot, the doctor's run of this day, the drill sweeper's run
        of this quarter hour, with ``backups.verify_every`` or ``backups.drill_every`` set,
        this hour's verification or drill rotation, and on every ``backups.readiness_every``-th
        day the readiness report."""
        ids = [self.tick(now), self.tick(now, DOCTOR, DOCTOR_INTERVAL)]
        if self.rt.inventory.backups.verify_every > 0:
            ids.append(self.tick(now, VERIFY_COMMAND, VERIFY_INTERVAL))
        if self.rt.inventory.backups.drill_every > 0:
            ids.append(self.tick(now, DRILL_COMMAND, DRILL_INTERVAL))
        ids.append(self.tick(now, SWEEP_COMMAND, SWEEP_INTERVAL))  # drills by hand too
        if self.readiness_due(now):
            ids.append(self.tick(now, READINESS_COMMAND, DOCTOR_INTERVAL))
        return [job_id for job_id in ids if job_id]

    def readiness_due(self, now: float) -> bool:
        """Every ``backups.readiness_every`` UTC days (day numbers since the epoch divisible by
        it), once that day: slots of a day, since request ids are remembered for a day only."""
        every = self.rt.inventory.backups.readiness_every
        return every > 0 and int(now // DOCTOR_INTERVAL) % every == 0

    def wait(self, now: float) -> float:
        """Seconds until the next slot starts (capped, so a clock jump is noticed soon)."""
        return min(max((self.slot(now) + 1) * self.interval - now, 0.05), 30.0)


def submit_system(rt: Runtime, command: str, request_id: str, q: Queue | None = None
                  ) -> str | None:
    """Enqueue system command ``command`` once per ``request_id`` (however many processes ask);
    the job id if this call enqueued it."""
    registry.load(rt.settings.plugins)
    q = q or queue(rt.client, rt.settings.queue)
    job = Job(new_id(), command, {}, "scheduler", registry.SYSTEM, FRONTEND, request_id,
              timeout=registry.COMMANDS[command].timeout)
    job, created = rt.store.create(job, lambda pipe, j: enqueue(q, pipe, j, "plan"))
    if created:
        log.info("%s %s enqueued (%s)", command, job.id, request_id, extra={"job_id": job.id})
    return job.id if created else None


def run(rt: Runtime, stop: threading.Event | None = None) -> int:
    """Tick until SIGTERM/SIGINT (or ``stop``); a Redis outage is logged and ridden out."""
    import redis

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    scheduler = WatchScheduler(rt)
    log.info("backup scheduler: one check every %ss", scheduler.interval)
    while not stop.is_set():
        now = time.time()
        try:
            scheduler.tick_all(now)
        except redis.RedisError as exc:
            log.warning("backup scheduler: redis unavailable (%s); retrying", exc)
            stop.wait(2.0)
            continue
        stop.wait(scheduler.wait(time.time()))
    return 0

"""Notices what nobody else will: a worker that died mid-job, an approval request that expired,
and a cancelled job whose step would not stop. Runs in the bot (a singleton) every tick.
"""

from __future__ import annotations

import contextlib
import logging
import time

from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.serializers import JSONSerializer

from bot.records import signals
from bot.records.events import Event, EventType
from bot.records.jobs import Job, JobStatus
from bot.records.locks import LockKey
from bot.runtime import Runtime

log = logging.getLogger("drbot.reaper")
DRILLS = ("drill", "drill-next")


def reap(rt: Runtime) -> list[str]:
    """One pass; returns the ids of jobs it changed."""
    changed = []
    now = time.time()
    for job_id in rt.store.active():
        try:
            job = rt.store.get(job_id)
        except Exception:  # noqa: BLE001,S112  (forged records are refused where they are used)
            continue
        if job.status == JobStatus.RUNNING and not signals.is_alive(rt.client, job_id):
            if lost(rt, job):  # else it ended between the two reads
                changed.append(job_id)
        elif job.status == JobStatus.AWAITING_APPROVAL and job.deadline and now > job.deadline:
            if expire(rt, job):
                changed.append(job_id)
        elif job.status == JobStatus.RUNNING:
            backstop_cancel(rt, job, now)
        elif stale(rt, job, now) and unstarted(rt, job):
            changed.append(job_id)
    return changed


def stale(rt: Runtime, job: Job, now: float) -> bool:
    return job.status in (JobStatus.PLANNING, JobStatus.QUEUED) and \
        now - job.signed > rt.settings.actionable_seconds


def unstarted(rt: Runtime, job: Job) -> bool:
    """A job no worker started within the actionable window will not be started any more (the
    worker refuses a record that old, as it could be one written back): say so."""
    window = rt.settings.actionable_seconds

    def change(j: Job) -> bool:
        if j.status not in (JobStatus.PLANNING, JobStatus.QUEUED) or time.time() - j.signed <= window:
            return False
        j.status, j.error = JobStatus.EXPIRED, f"no worker started it within {window}s"
        return True
    job = rt.store.update(job.id, change)
    if job.status != JobStatus.EXPIRED:
        return False
    rt.events.emit(job.id, Event(EventType.EXPIRED, message=f"no worker started this job within "
                                 f"{window}s; nothing was run. Ask again if it is still needed."))
    rt.audit.record("job", "expired", job=job.id, detail="not started within the window")
    return True


def lost(rt: Runtime, job: Job) -> bool:
    """Declare a running job without proof of life lost; False if it was not (any more)."""
    step = job.current_step
    name = step.name if step else "?"
    cancelled = signals.cancel_requested_by(rt.client, job.id)

    what = "cancelled; the worker stopped" if cancelled else "worker lost"
    said = Event(EventType.LOST, message=f"{what} during step {name}; state unknown; "
                 f"/dr retry {job.id} resumes")

    def change(j: Job) -> bool:
        if j.status != JobStatus.RUNNING or signals.is_alive(rt.client, j.id):
            return False
        j.status = JobStatus.CANCELLED if cancelled else JobStatus.LOST
        j.error = f"worker lost during step {name}"
        return True
    # The verdict goes into the thread with the status it sets, in one transaction: a worker that
    # was only late writes its outcome after it, never before (see Events.emit_in).
    job = rt.store.update(job.id, change, lambda pipe, j: rt.events.emit_in(pipe, j.id, said))
    if job.status not in (JobStatus.LOST, JobStatus.CANCELLED) \
            or job.error != f"worker lost during step {name}":
        return False  # it ended (or was cancelled) between the reads
    rt.locks.release(job.id, [LockKey(name) for name, _ in job.locks])  # release ignores modes
    rt.audit.record("job", job.status, job=job.id, detail=f"during step {name}")
    if job.command in DRILLS:
        sweep_after(rt, job)
    return True


def sweep_after(rt: Runtime, job: Job) -> None:
    """A drill whose worker died left its namespace: have a worker sweep it now (the bot holds
    no cluster credentials), once per lost drill."""
    from bot.watch.scheduler import SWEEP_COMMAND, submit_system

    try:
        submit_system(rt, SWEEP_COMMAND, f"{SWEEP_COMMAND}:after:{job.id}:{job.attempt}")
    except Exception:  # the scheduler's periodic sweep still comes  # noqa: BLE001
        log.exception("could not enqueue the drill sweep after job %s", job.id)


def expire(rt: Runtime, job: Job) -> bool:
    def change(j: Job) -> bool:
        if j.status != JobStatus.AWAITING_APPROVAL:
            return False
        j.status = JobStatus.EXPIRED
        return True
    job = rt.store.update(job.id, change)
    if job.status != JobStatus.EXPIRED:
        return False
    rt.events.emit(job.id, Event(EventType.EXPIRED, message="the approval request expired; nothing "
                                 "was run. Ask again if it is still needed."))
    rt.audit.record("job", "expired", job=job.id)
    return True


def backstop_cancel(rt: Runtime, job: Job, now: float) -> None:
    """If a cancel was asked long ago and the job still runs, have rq stop its work horse."""
    asked = signals.cancel_requested_at(rt.client, job.id)
    if asked is None or now - asked < 2 * rt.settings.cancel_grace_seconds + 15:
        return
    rq_id = signals.execution_of(rt.client, job.id)
    if rq_id:
        log.warning("job %s ignored its cancel; stopping its work horse", job.id)
        with contextlib.suppress(InvalidJobOperation, NoSuchJobError):
            send_stop_job_command(rt.client, rq_id, serializer=JSONSerializer)

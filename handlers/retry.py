"""/dr retry <id>: run a failed, cancelled or lost job again from its first unfinished step."""

from __future__ import annotations

from bot.chat import relay
from bot.chat.core import ControlContext, Reply
from bot.errors import CommandError
from bot.grammar import JOB_ID, Param
from bot.records import signals
from bot.records.events import Event
from bot.records.jobs import RETRYABLE, Job
from bot.records.queue import enqueue, queue
from bot.registry import control
from bot.worker import pids


@control("retry", summary="retry a failed, cancelled or lost job from its first unfinished step",
         params=(Param("id", "the job id", kind=JOB_ID, complete="jobs"),))
def retry(ctx: ControlContext) -> Reply:
    rt, person = ctx.rt, ctx.caller.person or ""
    job_id = str(ctx.args["id"])
    alive = pids.living(rt.client, job_id)
    if alive:
        raise CommandError(f"a subprocess of job {job_id} is still running ({', '.join(alive)}); "
                           "wait for it to end (or end it), then retry")
    q = queue(rt.client, rt.settings.queue)

    def change(job: Job) -> None:
        if job.status not in RETRYABLE:
            raise CommandError(f"job {job.id} is {job.status}; only failed, cancelled or lost jobs "
                               "can be retried")
        job.status, job.error, job.attempt = "queued", None, job.attempt + 1
        for step in job.steps:
            if step.status != "done":
                step.status, step.error, step.started, step.ended = "pending", None, None, None
    job = rt.store.update(job_id, change,
                          lambda pipe, j: enqueue(q, pipe, j, "retry"))
    signals.clear_cancel(rt.client, job_id)
    relay.reactivate(rt.client, job_id)
    done = [s.name for s in job.steps if s.status == "done"]
    first = next((s.name for s in job.steps if s.status != "done"), "the end")
    rt.events.emit(job_id, Event("note", message=f"retry {job.attempt} requested by {person}; "
                                 f"resuming at {first}" + (f" ({len(done)} step(s) already done)"
                                                           if done else "")))
    rt.audit.record("retry", "queued", person=person, account=ctx.caller.account, job=job_id)
    return Reply(f"job {job_id}: retry {job.attempt} queued, resuming at {first}")

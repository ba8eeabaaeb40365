"""/dr retry <id>: run a failed, cancelled or lost job again from its first unfinished step.

A retry is a new request as far as the policy goes: the person asking must be allowed to run the
job's own command now (being allowed to retry is not enough), and a job whose command needs
approval needs it again (unless its rule says `retry_keeps_approval`), from someone other than
the requester and the person retrying.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bot.control import ControlContext, EventType, JobStatus, Reply, StepStatus
from bot.errors import CommandError
from bot.grammar import JOB_ID, Param
from bot.registry import control

if TYPE_CHECKING:
    from bot.control import Job


@control("retry", summary="retry a failed, cancelled or lost job from its first unfinished step",
         params=(Param("id", "the job id", kind=JOB_ID, complete="jobs"),))
def retry(ctx: ControlContext) -> Reply:
    person = ctx.person
    job_id = str(ctx.args["id"])
    alive = ctx.subprocesses(job_id)
    if alive:
        raise CommandError(f"a subprocess of job {job_id} is still running ({', '.join(alive)}); "
                           "wait for it to end (or end it), then retry")
    command = ctx.job(job_id).command
    if not ctx.policy.may_request(ctx.caller, command):
        ctx.audit.record("retry", "refused-not-allowed", person=person, account=ctx.caller.account,
                         job=job_id, detail=f"may not run /dr {command}")
        raise CommandError(f"{person} may not run /dr {command}, so may not retry job {job_id}; "
                           f"ask someone who may run it")
    rule = ctx.policy.rule(command)
    gated = bool(rule and rule.approvals and not rule.retry_keeps_approval)

    def change(job: Job) -> None:
        if not job.retryable:
            raise CommandError(f"job {job.id} is {job.status}; only failed, cancelled or lost jobs "
                               "can be retried")
        if job.command != command:
            raise CommandError(f"job {job.id} changed while retrying; try again")
        job.error, job.attempt = None, job.attempt + 1
        job.retried_by, job.retried_account = person, ctx.caller.account
        if gated and rule:
            job.status, job.approvals = JobStatus.AWAITING_APPROVAL, []
            job.deadline = time.time() + rule.expires_seconds
        else:
            job.status = JobStatus.QUEUED
        for step in job.steps:
            if step.status != StepStatus.DONE:
                step.status, step.error, step.started, step.ended = StepStatus.PENDING, None, None, None
    job = ctx.update(job_id, change, enqueue_as="retry")
    ctx.clear_cancel(job_id)
    ctx.reactivate(job_id)
    done = [s.name for s in job.steps if s.status == StepStatus.DONE]
    first = next((s.name for s in job.steps if s.status != StepStatus.DONE), "the end")
    ctx.say(job_id, EventType.NOTE, f"retry {job.attempt} requested by {person}; resuming at {first}"
            + (f" ({len(done)} step(s) already done)" if done else ""))
    ctx.audit.record("retry", job.status, person=person, account=ctx.caller.account, job=job_id)
    if job.status == JobStatus.AWAITING_APPROVAL:
        ctx.say(job_id, EventType.AWAITING_APPROVAL, f"retry {job.attempt} of /dr {job.command} needs "
                f"approval again: /dr approve {job_id}")
        return Reply(f"job {job_id}: retry {job.attempt} needs approval again "
                     f"(/dr approve {job_id}), then resumes at {first}")
    return Reply(f"job {job_id}: retry {job.attempt} queued, resuming at {first}")

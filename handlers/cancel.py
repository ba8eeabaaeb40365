"""/dr cancel <id>: stop a job. A running job is asked to stop (cooperatively first).

Only someone who may run or approve the job's own command (by the policy now) may cancel it:
being allowed to cancel some job is not being allowed to stop this one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.control import ControlContext, EventType, JobStatus, Reply
from bot.errors import CommandError
from bot.grammar import JOB_ID, Param
from bot.registry import control

if TYPE_CHECKING:
    from bot.control import Job



@control("cancel", summary="cancel a job (a running step is stopped, subprocesses included)",
         params=(Param("id", "the job id", kind=JOB_ID, complete="jobs"),))
def cancel(ctx: ControlContext) -> Reply:
    person = ctx.person
    job_id = str(ctx.args["id"])
    command = ctx.job(job_id).command
    if not (ctx.policy.may_request(ctx.caller, command)
            or ctx.policy.may_approve(person, command)):
        ctx.audit.record("cancel", "refused-not-allowed", person=person,
                         account=ctx.caller.account, job=job_id, detail=f"/dr {command}")
        raise CommandError(f"{person} may neither run nor approve /dr {command}, so may not "
                           f"cancel job {job_id}")

    def change(job: Job) -> bool:
        if job.terminal:
            raise CommandError(f"job {job.id} has already ended ({job.status})")
        if job.not_started:
            job.status, job.error = JobStatus.CANCELLED, f"cancelled by {person} before it started"
            return True
        return False
    job = ctx.update(job_id, change)
    ctx.audit.record("cancel", job.status, person=person, account=ctx.caller.account, job=job_id)
    if job.status == JobStatus.CANCELLED:
        ctx.say(job_id, EventType.CANCELLED, f"cancelled by {person} before it started; nothing was "
                "changed")
        return Reply(f"job {job_id} cancelled; it had not started")
    ctx.request_cancel(job_id)
    step = job.current_step
    ctx.say(job_id, EventType.PROGRESS, f"cancel requested by {person}; stopping step "
                                f"{step.name if step else '?'}")
    return Reply(f"job {job_id}: stopping (step {step.name if step else '?'}); the thread will say "
                 "what state it was left in")

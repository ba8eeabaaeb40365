"""/dr cancel <id>: stop a job. A running job is asked to stop (cooperatively first).

Only someone who may run or approve the job's own command (by the policy now) may cancel it:
being allowed to cancel some job is not being allowed to stop this one."""

from __future__ import annotations

from bot.chat.core import ControlContext, Reply
from bot.errors import CommandError
from bot.grammar import JOB_ID, Param
from bot.records import signals
from bot.records.events import Event
from bot.records.jobs import Job
from bot.registry import control

NOT_STARTED = ("planning", "awaiting_approval", "queued")


@control("cancel", summary="cancel a job (a running step is stopped, subprocesses included)",
         params=(Param("id", "the job id", kind=JOB_ID, complete="jobs"),))
def cancel(ctx: ControlContext) -> Reply:
    rt, person = ctx.rt, ctx.caller.person or ""
    job_id = str(ctx.args["id"])
    command = rt.store.get(job_id).command
    if not (rt.policy.may_request(ctx.caller, command) or rt.policy.may_approve(person, command)):
        rt.audit.record("cancel", "refused-not-allowed", person=person,
                        account=ctx.caller.account, job=job_id, detail=f"/dr {command}")
        raise CommandError(f"{person} may neither run nor approve /dr {command}, so may not "
                           f"cancel job {job_id}")

    def change(job: Job) -> bool:
        if job.terminal:
            raise CommandError(f"job {job.id} has already ended ({job.status})")
        if job.status in NOT_STARTED:
            job.status, job.error = "cancelled", f"cancelled by {person} before it started"
            return True
        return False
    job = rt.store.update(job_id, change)
    rt.audit.record("cancel", job.status, person=person, account=ctx.caller.account, job=job_id)
    if job.status == "cancelled":
        rt.events.emit(job_id, Event("cancelled", message=f"cancelled by {person} before it "
                                                          "started; nothing was changed"))
        return Reply(f"job {job_id} cancelled; it had not started")
    signals.request_cancel(rt.client, job_id, person)
    step = job.current_step
    rt.events.emit(job_id, Event("progress", message=f"cancel requested by {person}; stopping "
                                 f"step {step.name if step else '?'}"))
    return Reply(f"job {job_id}: stopping (step {step.name if step else '?'}); the thread will say "
                 "what state it was left in")

"""/dr approve [id] and /dr deny [id]: a second person's decision on a pending job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.control import ControlContext, EventType, JobStatus, Reply
from bot.errors import CommandError
from bot.grammar import JOB_ID, Param
from bot.registry import control

if TYPE_CHECKING:
    from bot.control import Job

ID = (Param("id", "the job id (may be left out in the console when one job is pending)",
            kind=JOB_ID, required=False, complete="jobs"),)


def target(ctx: ControlContext, verb: str) -> str:
    if ctx.args.get("id"):
        return str(ctx.args["id"])
    if ctx.frontend != "console":
        raise CommandError(f"name the job: /dr {verb} <id>")
    pending = ctx.pending()
    if len(pending) == 1:
        return pending[0].id
    if not pending:
        raise CommandError(nothing_for(ctx, verb))
    raise CommandError(f"{len(pending)} jobs are waiting; name one: "
                       + ", ".join(f"/dr {verb} {j.id} ({j.command})" for j in pending))


def nothing_for(ctx: ControlContext, verb: str) -> str:
    """Why a bare /dr approve finds nothing: each waiting job and why it is not this caller's."""
    person = ctx.person
    waiting = [job for job in map(ctx.job, ctx.active())
               if job.status == JobStatus.AWAITING_APPROVAL]
    if not waiting:
        return "no job is waiting for approval; /dr jobs lists recent jobs"
    reasons = []
    for job in waiting:
        rule = ctx.policy.rule(job.command)
        whom = ", ".join(rule.approvers) if rule and rule.approvers else "nobody (no rule)"
        what = f"job {job.id} ({ctx.describe(job)}) waits for {whom}"
        if job.requester == person:
            reasons.append(f"{what}: it is your own, so another approver must {verb} it")
        else:
            reasons.append(f"{what}: you ({person}) are not an approver of /dr {job.command}")
    return "no job is waiting for your approval. " + "; ".join(reasons)


def tell(ctx: ControlContext, job: Job, message: str) -> Reply:
    ctx.say(job.id, EventType.APPROVAL if job.status != JobStatus.DENIED else EventType.DENIED, message)
    return Reply(message, in_thread=True)


@control("approve", summary="approve a pending job (not your own)", params=ID)
def approve(ctx: ControlContext) -> Reply:
    job = ctx.approve(target(ctx, "approve"))
    count = len({a.person for a in job.approvals if a.digest == job.digest})
    state = "queued to run" if job.status == JobStatus.QUEUED else "waiting for more approvals"
    return tell(ctx, job, f"job {job.id} approved by {ctx.caller.person} "
                          f"({count}/{job.approvals_needed}); {state}")


@control("deny", summary="deny a pending job", params=ID)
def deny(ctx: ControlContext) -> Reply:
    job = ctx.deny(target(ctx, "deny"))
    return tell(ctx, job, f"job {job.id} denied by {ctx.caller.person}; it will not run")

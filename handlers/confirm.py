"""/dr confirm <id> <phase>: start the next phase of a running job that waits in its thread.

Why this shape: a runbook's steps run on the worker, which must not trust anything in Redis that
drbot did not sign. So the bot (the only process that knows who typed the command) checks that the
caller is the job's requester or one of its approvers by the policy, and writes one *sealed*
record, ``drbot:confirm:<job>:<phase>``, holding the job id, the phase, the person, the account and
the job's plan digest, HMAC-signed with the key both processes read from their configuration.
(bot/records/confirmations.py owns that record.) The waiting step (``wait_for_confirmation``,
worker side) polls for that record, opens it with its own key (a record written by anyone else is
refused and the job stops), and checks again, against the policy as it is now, that the person may
confirm, that the record names this job, this phase and the digest the approvals bound to. A
confirmation is therefore job-scoped, phase-scoped, plan-scoped and signed; it cannot be replayed
onto another job, another phase or a changed plan. It is also bound to the attempt and counts only
if it was given after the waiting step started, so it is used at most once: a copy kept from an
earlier attempt (or written back later by anyone who can reach Redis) passes no later wait. A
finished confirm step is checkpointed like any other step, so it is never asked twice. A
confirmation the waiting step refuses (forged, copied from another job or phase, given for another
plan or an earlier wait) is audited, noted in the thread, and the step goes on waiting for a real
one: a Redis writer can delay a phase, never start one.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from adapters.errors import Cancelled, TimedOut
from bot.control import ControlContext, EventType, JobStatus, Reply, StepStatus
from bot.errors import CommandError
from bot.grammar import JOB_ID, Param, ValueKind
from bot.registry import control

if TYPE_CHECKING:
    from bot.control import Job, Policy
    from bot.runbook import StepContext

POLL = 1.0
PHASE = ValueKind("phase number", re.compile(r"[1-9]"), "2")


def step_name(phase: int) -> str:
    """The name of the step that waits for phase ``phase`` (what /dr confirm looks for)."""
    return f"confirm phase {phase}"


def may_confirm(policy: Policy, job: Job, person: str) -> bool:
    return person == job.requester or policy.may_approve(person, job.command)


# -- bot side -----------------------------------------------------------------------------------


@control("confirm", summary="start the next phase of a job waiting for confirmation",
         params=(Param("id", "the job id", kind=JOB_ID, complete="jobs"),
                 Param("phase", "the phase the job waits for", kind=PHASE)))
def confirm(ctx: ControlContext) -> Reply:
    person = ctx.person
    job_id, phase = str(ctx.args["id"]), int(str(ctx.args["phase"]))
    job = ctx.job(job_id)
    if not may_confirm(ctx.policy, job, person):
        ctx.audit.record("confirm", "refused-not-allowed", person=person,
                        account=ctx.caller.account, job=job_id)
        raise CommandError(f"{person} may not confirm job {job_id}: only its requester "
                           f"({job.requester}) or an approver of /dr {job.command} may")
    name = step_name(phase)
    waiting = next((s for s in job.steps if s.name == name), None)
    if waiting is None:
        raise CommandError(f"job {job_id} (/dr {job.command}) has no phase {phase} to confirm")
    if waiting.status == StepStatus.DONE:
        raise CommandError(f"phase {phase} of job {job_id} was already confirmed")
    current = job.current_step
    if job.status != JobStatus.RUNNING or current is None or current.name != name:
        now = current.name if current else "nothing"
        raise CommandError(f"job {job_id} is {job.status} and not waiting for phase {phase} "
                           f"(its current step is {now}); confirm when the thread asks for it")
    if not ctx.policy.may_request(ctx.caller, job.command) and \
            not ctx.policy.may_approve(person, job.command):
        ctx.audit.record("confirm", "refused-not-allowed", person=person,
                        account=ctx.caller.account, job=job_id, detail="policy changed")
        raise CommandError(f"{person} may no longer run or approve /dr {job.command}, so may not "
                           f"confirm job {job_id}")
    record = {"job": job_id, "phase": phase, "person": person, "account": ctx.caller.account,
              "digest": job.digest or "", "attempt": job.attempt, "version": job.version,
              "at": time.time()}
    ctx.confirm(record)
    ctx.audit.record("confirm", "confirmed", person=person, account=ctx.caller.account,
                    job=job_id, detail=f"phase {phase}")
    message = f"phase {phase} of job {job_id} confirmed by {person}; it starts now"
    ctx.say(job_id, EventType.NOTE, message)
    return Reply(message)


# -- worker side --------------------------------------------------------------------------------


def _valid(record: dict[str, Any], job: Job, phase: int, policy: Policy) -> str:
    """'' when the record confirms this phase of this job and plan; else why not."""
    if record.get("job") != job.id or record.get("phase") != phase:
        return "it names another job or phase"
    if record.get("digest") != (job.digest or ""):
        return "it was given for an earlier plan"
    waiting = next((s for s in job.steps if s.name == step_name(phase)), None)
    started = waiting.started if waiting and waiting.started else job.signed
    at = record.get("at")
    if record.get("attempt") != job.attempt or not isinstance(at, int | float) or at < started:
        return "it was given for an earlier wait (a confirmation is used once)"
    if not may_confirm(policy, job, str(record.get("person"))):
        return f"{record.get('person')} may no longer confirm it (the policy changed)"
    return ""


def wait_for_confirmation(step: StepContext, phase: int, what: str, timeout: float
                          ) -> dict[str, Any]:
    """Wait until the requester or an approver types /dr confirm <job> <phase>; who confirmed."""
    records = step.records
    job = records.job(step.job_id)
    step.progress(f"phase {phase} ({what}) waits for confirmation: the requester "
                  f"({job.requester}) or an approver types /dr confirm {step.job_id} {phase}",
                  target=f"phase {phase}", status="waiting")
    deadline = time.monotonic() + timeout
    told = ""
    while True:
        if step.cancelled():
            raise Cancelled(f"stopped waiting for the confirmation of phase {phase}; nothing of "
                            "that phase has started")
        record, why = records.confirmation(step.job_id, phase)
        outcome = "refused-forged" if why else "refused-replay"
        if record is not None:
            why = _valid(record, job, phase, records.policy)
            if not why:
                step.progress(f"phase {phase} confirmed by {record['person']}",
                              target=f"phase {phase}", status="confirmed")
                return {"confirmed_by": record["person"], "at": record["at"]}
        if why and why != told:  # once per refused record, not once per poll
            records.audit.record("confirm", outcome, job=step.job_id,
                                 detail=f"phase {phase}: {why}")
            step.progress(f"a confirmation of phase {phase} was ignored: {why}",
                          target=f"phase {phase}", status="waiting")
        told = why
        if time.monotonic() > deadline:
            raise TimedOut(f"nobody confirmed phase {phase} ({what}) within {timeout / 3600:g}h; "
                           f"nothing of that phase has started. /dr retry {step.job_id}, then "
                           f"/dr confirm {step.job_id} {phase} when ready")
        time.sleep(POLL)

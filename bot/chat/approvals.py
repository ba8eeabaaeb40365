"""Approving and denying jobs: by a different person who is an approver, bound to the plan digest.

Each decision is one optimistic transaction on the signed job record, so two clicks at once give one
approval, and the click that completes the count also queues the job in the same atomic write.
"""

from __future__ import annotations

import time

from redis.client import Pipeline

from bot.config.policy import Caller, Policy
from bot.errors import CommandError
from bot.records.jobs import Approval, Job, JobStatus
from bot.records.queue import enqueue, queue
from bot.runtime import Runtime


def _decidable(job: Job, caller: Caller, policy: Policy, verb: str) -> str:
    person = caller.person
    if person is None:
        raise CommandError(policy.not_listed(caller.account))
    if job.status != JobStatus.AWAITING_APPROVAL:
        raise CommandError(f"job {job.id} is {job.status.replace('_', ' ')}, not awaiting "
                           "approval")
    if job.deadline is not None and time.time() > job.deadline:
        raise CommandError(f"the approval request for job {job.id} has expired; ask for it again")
    if person == job.requester:
        raise CommandError(f"you requested job {job.id} ({caller.account} is {person}'s account); "
                           f"another approver must {verb} it")
    if person == job.retried_by:
        raise CommandError(f"you asked for this retry of job {job.id}; another approver must "
                           f"{verb} it")
    if not policy.may_approve(person, job.command):
        raise CommandError(f"{person} is not an approver for /dr {job.command}")
    return person


def approve(rt: Runtime, job_id: str, caller: Caller) -> Job:
    policy = rt.policy
    q = queue(rt.client, rt.settings.queue)

    def change(job: Job) -> None:
        person = _decidable(job, caller, policy, "approve")
        if any(a.person == person for a in job.approvals
               if a.digest == job.digest and a.attempt == job.attempt):
            raise CommandError(f"{person} has already approved job {job.id}")
        rule = policy.rule(job.command)
        expires = rule.expires_seconds if rule else 1800
        now = time.time()
        job.approvals.append(Approval(person, caller.account, now, job.digest or "",
                                      now + expires, job.attempt, job.version))
        valid = {a.person for a in job.approvals
                 if a.digest == job.digest and a.attempt == job.attempt}
        if len(valid) >= job.approvals_needed:
            job.status, job.decided_by = JobStatus.QUEUED, person

    def then(pipe: Pipeline, job: Job) -> None:
        if job.status == JobStatus.QUEUED:
            enqueue(q, pipe, job, f"run{len(job.approvals)}")
    job = rt.store.update(job_id, change, then)
    rt.audit.record("approve", job.status, person=caller.person or "", account=caller.account,
                    job=job_id)
    return job


def deny(rt: Runtime, job_id: str, caller: Caller) -> Job:
    def change(job: Job) -> None:
        person = _decidable(job, caller, rt.policy, "deny")
        job.status, job.decided_by = JobStatus.DENIED, person
    job = rt.store.update(job_id, change)
    rt.audit.record("deny", "denied", person=caller.person or "", account=caller.account,
                    job=job_id)
    return job


def pending_for(rt: Runtime, caller: Caller) -> list[Job]:
    """Jobs awaiting an approval this caller could give (for the console's bare /dr approve)."""
    found = []
    for job_id in rt.store.active():
        job = rt.store.get(job_id)
        if job.status == JobStatus.AWAITING_APPROVAL and caller.person and caller.person != job.requester \
                and rt.policy.may_approve(caller.person, job.command):
            found.append(job)
    return found

"""/dr locks and /dr unlock <key>: who holds what, and freeing a lock whose job is gone.

A lease normally ends with its job (released at the end, or expiring when the heartbeat stops), so a
lock outliving its job means a release that failed. Freeing it is still a change to what protects
the infrastructure, so it is a runbook: the policy must ask an approval for it (refused otherwise),
the worker checks again just before it runs that the holder is gone, and it is audited.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.control import ControlContext, Reply
from bot.errors import CommandError
from bot.grammar import Param, ValueKind
from bot.records.locks import Lease
from bot.registry import control, runbook
from bot.runbook import PlanContext, Records, Runbook, StepContext, StepDef
from handlers.jobs import age

if TYPE_CHECKING:
    from bot.control import Job

LOCK_KEY = ValueKind("lock key", re.compile(r"[a-z0-9][a-z0-9:/._-]{0,250}"), "node:k3s-agent-1")


@dataclass(frozen=True)
class Holder:
    """What a lease's job id stands for: a job still alive, or why it counts as gone."""

    job_id: str
    alive: bool
    text: str  # "job 3f9c2a1b (/dr rebuild-node, alice, running) since 12m ago"


def holder(read: Callable[[str], Job], job_id: str) -> Holder:
    try:
        job = read(job_id)
    except CommandError:
        return Holder(job_id, False, f"job {job_id} (gone: no such job record)")
    started = min((s.started for s in job.steps if s.started), default=job.created)
    text = (f"job {job_id} (/dr {job.command}, {job.requester}, {job.status}) "
            f"since {age(time.time() - started)} ago")
    return Holder(job_id, not job.terminal, text)


def line(lease: Lease, who: Holder) -> str:
    end = f"lease renews every few seconds, ends in {age(lease.remaining)} unless renewed"
    hint = "" if who.alive else f"; its job has ended: /dr unlock {lease.key}"
    return f"{lease.key}  {lease.mode}  {who.text}; {end}{hint}"


@control("locks", summary="who holds which lock, since when, for which job")
def locks(ctx: ControlContext) -> Reply:
    leases = ctx.leases()
    if not leases:
        return Reply("no locks are held", ephemeral=True)
    return Reply("\n".join(line(lease, holder(ctx.job, lease.holder)) for lease in leases),
                 ephemeral=True)


def gone_holders(records: Records, key: str) -> list[str]:
    """The holders of ``key``, all gone; refuses while any holder job (or its subprocess) lives."""
    leases = [lease for lease in records.leases() if lease.key == key]
    if not leases:
        raise CommandError(f"no lock {key} is held; /dr locks lists the locks")
    for lease in leases:
        who = holder(records.job, lease.holder)
        if who.alive:
            raise CommandError(f"{key} is held by {who.text}, which is still alive: wait for it "
                               f"or /dr cancel {lease.holder}")
        living = records.subprocesses(lease.holder)
        if living:
            raise CommandError(f"{key}: a subprocess of job {lease.holder} is still running "
                               f"({', '.join(living)}); end it first")
    return sorted(lease.holder for lease in leases)


@runbook("unlock", summary="free a lock whose job has ended (admins; needs an approval)",
         params=(Param("key", "the lock's key, as /dr locks shows it", kind=LOCK_KEY,
                       complete="locks"),), timeout=120)
def unlock(ctx: PlanContext) -> Runbook:
    records = ctx.records
    key = str(ctx.args["key"])
    if records.policy.approvals_needed("unlock") < 1:
        raise CommandError("the policy lets /dr unlock run without an approval; an admin must "
                           "give its rule `approvals: 1` (or more) and approvers first")
    holders = gone_holders(records, key)

    def preflight() -> None:
        if gone_holders(records, key) != holders:
            raise CommandError(f"the holders of {key} changed since the plan; ask again")

    def run(step: StepContext) -> dict[str, Any]:
        freed = records.evict(key, holders)
        requester = records.job(step.job_id).requester
        records.audit.record("unlock", "freed", person=requester, job=step.job_id,
                             detail=f"{key} held by {', '.join(holders)}")
        return {"freed": freed, "holders": holders}

    target = f"lock {key} held by {', '.join(f'job {h}' for h in holders)}"

    def summary(results: dict[str, dict[str, Any]]) -> str:
        return f"lock {key} is free (it was held by {', '.join(holders)}, whose jobs had ended)"

    return Runbook([StepDef("free-lock", run, target, "remove the ended jobs' leases",
                            destructive=True)], targets=[target], preflight=preflight,
                   summary=summary)

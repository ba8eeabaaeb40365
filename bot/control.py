"""The port of a control command: what it may ask of drbot's records, and the reply it gives.

A control command (approve, cancel, retry, confirm, jobs, help, audit, locks) runs in the bot
process and works on drbot's own records only. It gets a ControlContext from the core and asks it
for what it needs: no handler builds a Redis client, a signer, a policy or a job store, so the
security-relevant plumbing (signed records, the sealed confirmation, the queue's atomic enqueue)
stays in one place the handlers cannot get wrong. The core implements it (bot/chat/control.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

# The names of job and step states and of event types, from their owners, for the commands and the
# frontends (which may not import the records themselves).
from bot.records.events import EventType as EventType
from bot.records.jobs import JobStatus as JobStatus
from bot.records.jobs import StepStatus as StepStatus

if TYPE_CHECKING:
    from bot.config.policy import Caller as Caller
    from bot.config.policy import Policy as Policy
    from bot.records.audit import Audit
    from bot.records.jobs import Job as Job  # the record type commands read (no store)
    from bot.records.locks import Lease


@dataclass
class Reply:
    """What a command answers in chat."""

    text: str
    ok: bool = True
    ephemeral: bool = False
    job_id: str | None = None
    in_thread: bool = False  # the same text is posted in the job's thread as well


class ControlContext(Protocol):
    """Who asked, what they typed, and the operations a control command may perform."""

    caller: Caller

    @property
    def args(self) -> dict[str, str | bool | None]: ...

    @property
    def frontend(self) -> str:
        """The frontend the request came from ("console", "slack", "discord")."""
        ...

    @property
    def person(self) -> str:
        """The caller's person by the policy ('' when the account is not listed)."""
        ...

    @property
    def policy(self) -> Policy:
        """The policy as it is now (read again when its file changes); for questions only."""
        ...

    @property
    def audit(self) -> Audit: ...

    # -- jobs -------------------------------------------------------------------------------------
    def job(self, job_id: str) -> Job:
        """The job's verified record (CommandError when there is none, RecordForged if forged)."""
        ...

    def recent(self, count: int) -> list[str]:
        """The ids of the newest ``count`` jobs, newest first."""
        ...

    def active(self) -> list[str]:
        """The ids of the jobs that have not ended."""
        ...

    def update(self, job_id: str, change: Callable[[Job], Any], enqueue_as: str = "") -> Job:
        """One optimistic transaction on the signed record; with ``enqueue_as`` (a reason), a job
        the change leaves queued is put on the worker's queue in the same atomic write."""
        ...

    def say(self, job_id: str, kind: EventType, message: str) -> None:
        """A line in the job's thread."""
        ...

    def describe(self, job: Job) -> str:
        """'/dr <command> <args> (by <requester>)'."""
        ...

    def card(self, job: Job) -> str:
        """The job's card as text: its steps, approvals and state."""
        ...

    # -- approvals and confirmations --------------------------------------------------------------
    def approve(self, job_id: str) -> Job: ...

    def deny(self, job_id: str) -> Job: ...

    def pending(self) -> list[Job]:
        """Jobs awaiting an approval this caller could give."""
        ...

    def confirm(self, record: dict[str, Any]) -> None:
        """Seal and store the confirmation the waiting step opens (bot/records/confirmations.py)."""
        ...

    # -- signals between the chat side and the worker ---------------------------------------------
    def request_cancel(self, job_id: str) -> None: ...

    def clear_cancel(self, job_id: str) -> None: ...

    def reactivate(self, job_id: str) -> None:
        """Follow the job's thread again (a retried job speaks again)."""
        ...

    def subprocesses(self, job_id: str) -> list[str]:
        """The job's recorded subprocesses that may still be alive."""
        ...

    def leases(self) -> list[Lease]:
        """Every lock lease held now."""
        ...

    # -- help -------------------------------------------------------------------------------------
    def values(self, command: str, source: str) -> list[str]:
        """Live names drbot knows for an argument (nodes, PVCs...), for examples."""
        ...

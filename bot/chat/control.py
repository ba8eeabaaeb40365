"""The core's side of the control-command port (bot/control.py): the records a control command
works on, reached with the bot's runtime, which the handler never holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.client import Pipeline

from bot.chat import approvals
from bot.chat.complete import values
from bot.chat.render import card
from bot.config.policy import Caller
from bot.grammar import Parsed
from bot.records import confirmations, signals
from bot.records.events import Event, EventType
from bot.records.jobs import Job, JobStatus
from bot.records.queue import enqueue, queue
from bot.records.view import RecordsView
from bot.runtime import Runtime


def describe(job: Job) -> str:
    args = " ".join(f"{v}" if not isinstance(v, bool) else f"--{k}"
                    for k, v in job.args.items() if v not in (None, False))
    return f"/dr {job.command}{' ' + args if args else ''} (by {job.requester})"


@dataclass
class CoreControl(RecordsView):
    """A ControlContext for one request: the caller, what they typed, and the bot's runtime."""

    rt: Runtime
    caller: Caller
    parsed: Parsed
    frontend: str

    @property
    def args(self) -> dict[str, str | bool | None]:
        return self.parsed.args

    @property
    def person(self) -> str:
        return self.caller.person or ""

    def recent(self, count: int) -> list[str]:
        return self.rt.store.recent(count)

    def update(self, job_id: str, change: Callable[[Job], Any], enqueue_as: str = "") -> Job:
        if not enqueue_as:
            return self.rt.store.update(job_id, change)
        q = queue(self.rt.client, self.rt.settings.queue)

        def then(pipe: Pipeline, job: Job) -> None:
            if job.status == JobStatus.QUEUED:
                enqueue(q, pipe, job, enqueue_as)
        return self.rt.store.update(job_id, change, then)

    def say(self, job_id: str, kind: EventType, message: str) -> None:
        self.rt.events.emit(job_id, Event(kind, message=message))

    def describe(self, job: Job) -> str:
        return describe(job)

    def card(self, job: Job) -> str:
        return card(job).text()

    def approve(self, job_id: str) -> Job:
        return approvals.approve(self.rt, job_id, self.caller)

    def deny(self, job_id: str) -> Job:
        return approvals.deny(self.rt, job_id, self.caller)

    def pending(self) -> list[Job]:
        return approvals.pending_for(self.rt, self.caller)

    def confirm(self, record: dict[str, Any]) -> None:
        confirmations.write(self.rt.client, self.rt.signer, record)

    def request_cancel(self, job_id: str) -> None:
        signals.request_cancel(self.rt.client, job_id, self.person)

    def clear_cancel(self, job_id: str) -> None:
        signals.clear_cancel(self.rt.client, job_id)

    def reactivate(self, job_id: str) -> None:
        from bot.chat import relay  # not at the top: the relay imports the frontends, which import the core

        relay.reactivate(self.rt.client, job_id)

    def values(self, command: str, source: str) -> list[str]:
        return values(self.rt, command, source)

"""Job events: one Redis stream per job, written by the worker, read by the relay.

Only whitelisted fields are written, and their text passes through the redactor, so nothing secret
from Ansible results, Terraform output or an exception can reach a chat thread.

Each entry is signed (with the job id it belongs to) by the process that wrote it, so the relay
shows only what drbot wrote for that very job: an entry written by anyone else who can reach
Redis, or copied from another job's stream, is dropped and audited. Reading is defensive: one
malformed entry is refused, never crashed on.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from enum import StrEnum

import redis
from redis.client import Pipeline

from bot.errors import RecordForged
from bot.records.signing import Signer
from bot.redact import REDACT

STREAM = "drbot:events:"
KEEP = 5000  # entries per job stream
ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
FIELDS = ("type", "step", "target", "task", "host", "status", "message")
MAX_TEXT = 3000
KEEP_SECONDS = 7 * 86400



class EventType(StrEnum):
    """What an event in a job's stream says. The values are what the stream stores."""

    PLAN = "plan"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVAL = "approval"
    DENIED = "denied"
    NOTE = "note"
    STEP = "step"  # a step started or ended (updates the status card)
    PROGRESS = "progress"  # what a running step is doing (updates the status card)
    STEP_FAILED = "step_failed"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    REFUSED = "refused"
    EXPIRED = "expired"
    FILE = "file"  # a file for the thread, named by its digest (bot/records/files.py)


# Progress and step events update the status card, a file event posts its file; the others are
# milestones worth a thread reply.
MILESTONES = frozenset(EventType) - {EventType.STEP, EventType.PROGRESS, EventType.FILE}


@dataclass
class Event:
    type: str  # an EventType (kept as read from the stream)
    step: str = ""
    target: str = ""
    task: str = ""
    host: str = ""
    status: str = ""
    message: str = ""
    at: float = field(default_factory=time.time)
    id: str = ""

    def fields(self) -> dict[str, str]:
        out = {name: REDACT(str(getattr(self, name)))[:MAX_TEXT] for name in FIELDS}
        out["at"] = f"{self.at:.3f}"
        return out

    @classmethod
    def from_fields(cls, entry_id: str, raw: dict[bytes, bytes]) -> Event:
        """An event from a stream entry; ValueError (UnicodeError included) if malformed."""
        data = {k.decode(): v.decode() for k, v in raw.items()}
        kwargs = {name: data.get(name, "") for name in FIELDS}
        return cls(**kwargs, at=float(data.get("at", 0) or 0), id=entry_id)

    @property
    def milestone(self) -> bool:
        return self.type in MILESTONES


def signed_part(job_id: str, fields: dict[str, str]) -> dict[str, str]:
    return {"job": job_id, **{k: v for k, v in fields.items() if k != "sig"}}


class Events:
    def __init__(self, client: redis.Redis, signer: Signer) -> None:
        self.client = client
        self.signer = signer

    def signed(self, job_id: str, event: Event) -> dict[str, str]:
        fields = event.fields()
        fields["sig"] = self.signer.sign(signed_part(job_id, fields))
        return fields

    def emit(self, job_id: str, event: Event) -> str:
        entry = self.client.xadd(STREAM + job_id, self.signed(job_id, event),  # type: ignore[arg-type]
                                 maxlen=KEEP, approximate=True)
        return entry.decode() if isinstance(entry, bytes) else entry

    def emit_in(self, pipe: Pipeline, job_id: str, event: Event) -> None:
        """Queue the event in a transaction that changes the job's status: the thread then
        tells the outcomes in the order they were written. Emitted after its own write, a
        verdict ("worker lost") could land after the outcome that overwrote it ("done")."""
        pipe.xadd(STREAM + job_id, self.signed(job_id, event),  # type: ignore[arg-type]
                  maxlen=KEEP, approximate=True)

    def parse(self, job_id: str, entry_id: bytes | str, raw: dict[bytes, bytes]) -> Event:
        """The event in a stream entry of ``job_id``; RecordForged if drbot did not write it there
        or it is malformed."""
        try:
            eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            sig = fields.get("sig", "")
            if set(fields) - {*FIELDS, "at", "sig"}:
                raise ValueError("unknown fields")
            event = Event.from_fields(eid, raw)
        except (ValueError, AttributeError) as exc:
            raise RecordForged(f"event of job {job_id}: malformed ({type(exc).__name__})") from None
        if not self.signer.verify(signed_part(job_id, fields), sig):
            raise RecordForged(f"event {eid} of job {job_id}: not written by drbot for this job")
        return event

    def expire(self, job_id: str, pipe: Pipeline | None = None) -> None:
        """The job's events outlive it by KEEP_SECONDS; on ``pipe`` when given (its outcome's
        transaction)."""
        (pipe if pipe is not None else self.client).expire(STREAM + job_id, KEEP_SECONDS)

    def read(self, job_id: str, after: str = "0-0", count: int = 1000) -> list[Event]:
        """The job's events drbot wrote, after ``after``; any other entry is left out."""
        entries = self.client.xrange(STREAM + job_id, min=f"({after}" if after != "0-0" else "-",
                                     count=count)
        events = []
        for eid, raw in entries:
            try:
                events.append(self.parse(job_id, eid, raw))
            except RecordForged:
                continue
        return events

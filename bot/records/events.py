"""Job events: one Redis stream per job, written by the worker, read by the relay.

Only whitelisted fields are written, and their text passes through the redactor, so nothing secret
from Ansible results, Terraform output or an exception can reach a chat thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis

from bot.redact import REDACT

STREAM = "drbot:events:"
FIELDS = ("type", "step", "target", "task", "host", "status", "message")
MAX_TEXT = 3000
KEEP_SECONDS = 7 * 86400

# Event types. "progress" updates the status card; the others are milestones worth a thread reply.
MILESTONES = frozenset({"plan", "approval", "note", "step_failed", "done", "failed", "cancelled", "lost",
                        "refused", "awaiting_approval", "denied", "expired"})


@dataclass
class Event:
    type: str
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
        data = {k.decode(): v.decode() for k, v in raw.items()}
        kwargs = {name: data.get(name, "") for name in FIELDS}
        return cls(**kwargs, at=float(data.get("at", 0) or 0), id=entry_id)

    @property
    def milestone(self) -> bool:
        return self.type in MILESTONES


class Events:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def emit(self, job_id: str, event: Event) -> str:
        key = STREAM + job_id
        entry = self.client.xadd(key, event.fields(), maxlen=5000, approximate=True)
        return entry.decode() if isinstance(entry, bytes) else entry

    def expire(self, job_id: str) -> None:
        self.client.expire(STREAM + job_id, KEEP_SECONDS)

    def read(self, job_id: str, after: str = "0-0", count: int = 1000) -> list[Event]:
        entries = self.client.xrange(STREAM + job_id, min=f"({after}" if after != "0-0" else "-",
                                     count=count)
        return [Event.from_fields(eid.decode(), raw) for eid, raw in entries]

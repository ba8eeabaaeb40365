"""Verification results, one record per watched object, in Redis (key family ``drbot:verify:``).

Each record keeps the latest verification (backup id, when, outcome, what was checked, bytes
read, duration, the problem) and, separately, the latest one that passed: the *last verified
restorable point* survives a later failure, which is what an operator needs to know then. The
bytes read by scheduled verifications are summed per UTC day for the bandwidth budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from adapters.verify import Verification
from bot.watch.results import ResultHash

RESULTS = "drbot:verify:results"
BUDGET = "drbot:verify:bytes:"  # + YYYY-MM-DD, expires after two days


@dataclass
class VerificationRecord:
    kind: str
    name: str
    backup_id: str
    outcome: str
    verified_at: float
    duration: float
    bytes_read: int
    checked: list[str] = field(default_factory=list)
    problem: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    last_ok_at: float | None = None
    last_ok_backup: str = ""
    last_ok_point: str = ""  # the restorable point in time it proved, when the kind tells one

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerificationRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


_RESULTS = ResultHash(RESULTS, VerificationRecord.from_dict)


def restorable_point(result: Verification) -> str:
    """The point in time the backup restores to: the recovered transaction time (CNPG), the
    snapshot time (etcd), else the verification's own time."""
    for name in ("recovered_to", "taken_at"):
        value = result.details.get(name)
        if value:
            return str(value)
    return ""


def record(client: redis.Redis, result: Verification, key: str | None = None) -> VerificationRecord:
    """Store ``result`` as the object's latest verification (and latest pass, if it passed)."""
    key = key or f"{result.kind}:{result.name}"
    previous = load_one(client, key)
    rec = VerificationRecord(str(result.kind), key.partition(":")[2], result.backup_id, str(result.outcome),
                 result.verified_at.timestamp(), round(result.duration, 2), result.bytes_read,
                 list(result.checked), result.problem, dict(result.details))
    if result.ok:
        rec.last_ok_at, rec.last_ok_backup = rec.verified_at, rec.backup_id
        rec.last_ok_point = restorable_point(result)
    elif previous is not None:
        rec.last_ok_at, rec.last_ok_backup = previous.last_ok_at, previous.last_ok_backup
        rec.last_ok_point = previous.last_ok_point
    _RESULTS.save(client, key, rec)
    return rec


def load_one(client: redis.Redis, key: str) -> VerificationRecord | None:
    return _RESULTS.one(client, key)


def load(client: redis.Redis) -> dict[str, VerificationRecord]:
    """Every record by ``kind:name``; an unreadable entry is skipped (Redis is not trusted)."""
    return _RESULTS.all(client)


def _day(now: datetime) -> str:
    return BUDGET + now.astimezone(UTC).strftime("%Y-%m-%d")


def spend(client: redis.Redis, nbytes: int, now: datetime | None = None) -> int:
    """Add to today's bytes read by scheduled verifications; returns today's total."""
    key = _day(now or datetime.now(UTC))
    pipe = client.pipeline()
    pipe.incrby(key, max(0, int(nbytes)))
    pipe.expire(key, 2 * 86400)
    total, _ = pipe.execute()
    return int(total)


def spent(client: redis.Redis, now: datetime | None = None) -> int:
    value = client.get(_day(now or datetime.now(UTC)))
    return int(value or 0)


class Verifications:
    """The records as the worker's services offer them to handlers (which never see Redis)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def record(self, result: Verification, key: str | None = None) -> VerificationRecord:
        return record(self.client, result, key)

    def load(self) -> dict[str, VerificationRecord]:
        return load(self.client)

    def spend(self, nbytes: int) -> int:
        return spend(self.client, nbytes)

    def spent(self) -> int:
        return spent(self.client)

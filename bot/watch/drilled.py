"""Drill results, one record per drilled object, in Redis (key family ``drbot:drill:``).

Kept as verification results are (bot/watch/verified.py): the latest drill (backup, when, outcome,
restore time, what the checks found, the problem) and, separately, the latest one that passed, so
the last backup proven to restore in the cluster survives a later failure. The restore times are
what an RTO estimate is built from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from adapters.kubernetes.drills import DrillResult
from bot.watch.results import ResultHash

RESULTS = "drbot:drill:results"


@dataclass
class DrillRecord:
    kind: str
    name: str
    backup_id: str
    outcome: str  # "ok" or "failed"
    drilled_at: float
    duration: float
    restore_seconds: float | None
    size: int
    checked: list[str] = field(default_factory=list)
    problem: str = ""
    last_ok_at: float | None = None
    last_ok_backup: str = ""
    recovered_to: str = ""  # CNPG: the recovered point in time (UTC, ISO); "" for Longhorn

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DrillRecord:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


_RESULTS = ResultHash(RESULTS, DrillRecord.from_dict)


def record(client: redis.Redis, result: DrillResult) -> DrillRecord:
    """Store ``result`` as the object's latest drill (and latest pass, if it passed)."""
    key = f"{result.kind}:{result.name}"
    previous = load_one(client, key)
    failed = [c for c in result.checks if not c.ok]
    rec = DrillRecord(result.kind, result.name, result.backup_id, "ok" if result.ok else "failed",
                 result.started_at, round(result.duration, 2),
                 None if result.restore_seconds is None else round(result.restore_seconds, 2),
                 result.size, [f"{c.name}: {c.text}" for c in result.checks],
                 result.problem or "; ".join(f"{c.name}: {c.text}" for c in failed))
    rec.recovered_to = result.recovered_to
    if result.ok:
        rec.last_ok_at, rec.last_ok_backup = rec.drilled_at, rec.backup_id
    elif previous is not None:
        rec.last_ok_at, rec.last_ok_backup = previous.last_ok_at, previous.last_ok_backup
    _RESULTS.save(client, key, rec)
    return rec


def load_one(client: redis.Redis, key: str) -> DrillRecord | None:
    return _RESULTS.one(client, key)


def load(client: redis.Redis) -> dict[str, DrillRecord]:
    """Every record by ``kind:name``; an unreadable entry is skipped (Redis is not trusted)."""
    return _RESULTS.all(client)


class Drills:
    """The records as the worker's services offer them to handlers (which never see Redis)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def record(self, result: DrillResult) -> DrillRecord:
        return record(self.client, result)

    def load(self) -> dict[str, DrillRecord]:
        return load(self.client)

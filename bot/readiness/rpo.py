"""RPO per data object: how much would be lost if it had to be restored now.

Two ages side by side: of the newest backup at all, and of the newest backup proven restorable
(it passed a verification or a drill). Only the second is a promise; the gap between them is
what has not been proven yet. A verification or drill that failed does not move the proven
backup: the records keep the last one that passed (bot/watch/verified.py, drilled.py), so an
object whose last drill failed shows the age of the backup its previous good drill restored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from adapters import backupstore as bs

if TYPE_CHECKING:
    from bot.watch.facts import ObjectFacts, SeenBackup


class Mark(StrEnum):
    """The state of one backup on the timeline (the picture's markers)."""

    TAKEN = "taken"
    VERIFIED = "verified"
    DRILLED = "drilled"
    FAILED = "failed"


@dataclass
class Proof:
    how: str  # "verified" or "drilled"
    backup: str
    at: float | None  # when that backup was taken (its restorable point)
    latest_failed: str = ""  # the latest attempt failed: what it was, for the report


@dataclass
class ObjectRpo:
    kind: str
    name: str
    label: str
    newest_at: float | None
    proven: Proof | None
    proofs: list[Proof] = field(default_factory=list)
    marks: list[tuple[float, Mark]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    def proven_age(self, now: float) -> float | None:
        return None if self.proven is None or self.proven.at is None else now - self.proven.at

    def newest_age(self, now: float) -> float | None:
        return None if self.newest_at is None else now - self.newest_at


def record_keys(obj: ObjectFacts) -> list[str]:
    """The keys its verification and drill records may have (store name, PVC, cluster)."""
    names = dict.fromkeys([obj.name, obj.label, obj.server, *obj.aliases])
    return [f"{obj.kind}:{n}" for n in names if n]


def matching(records: dict[str, Any], obj: ObjectFacts) -> Any:
    return next((records[k] for k in record_keys(obj) if k in records), None)


def taken(seen: SeenBackup) -> bool:
    return bool(seen.in_store) or seen.cluster_state == "completed"


def _time(text: str) -> float | None:
    try:
        parsed = bs.parse_time(text)
    except ValueError:
        return None
    return parsed.timestamp() if isinstance(parsed, datetime) else None


ATTEMPT = {"verified": "verification", "drilled": "drill"}


def proof(how: str, record: Any, obj: ObjectFacts) -> Proof | None:
    """What one record proves: the backup its last passing run restored, with that backup's
    time (the restorable point the verification recorded when the backup is no longer listed)."""
    if record is None:
        return None
    failed = "" if record.ok else (f"latest {ATTEMPT[how]} of backup {record.backup_id} failed"
                                   + (f": {record.problem[:160]}" if record.problem else ""))
    if not record.last_ok_backup:
        return Proof(how, "", None, failed) if failed else None
    seen = obj.backups.get(record.last_ok_backup)
    at = seen.at.timestamp() if seen is not None and seen.at else None
    if at is None:
        at = _time(getattr(record, "last_ok_point", "") or "")
    return Proof(how, record.last_ok_backup, at, failed)


def marks(obj: ObjectFacts, verified: Any, drilled: Any) -> list[tuple[float, Mark]]:
    """Each listed backup's state: failed, drilled (passed), verified (passed), else taken."""
    good = {r.last_ok_backup: how for how, r in (("verified", verified), ("drilled", drilled))
            if r is not None and r.last_ok_backup}
    bad = {r.backup_id for r in (verified, drilled) if r is not None and not r.ok}
    out = []
    for seen in obj.backups.values():
        if seen.at is None:
            continue
        if seen.cluster_state == "failed" or (seen.name in bad and seen.name not in good):
            mark = Mark.FAILED
        elif seen.name in good:
            mark = Mark(good[seen.name])
        elif taken(seen):
            mark = Mark.TAKEN
        else:
            continue  # still running: not a backup yet
        out.append((seen.at.timestamp(), mark))
    return sorted(out)


def of_object(obj: ObjectFacts, verified: dict[str, Any], drilled: dict[str, Any]) -> ObjectRpo:
    ver, dri = matching(verified, obj), matching(drilled, obj)
    times = [s.at.timestamp() for s in obj.backups.values() if s.at and taken(s)]
    proofs = [p for p in (proof("verified", ver, obj), proof("drilled", dri, obj)) if p]
    dated = [p for p in proofs if p.at is not None]
    best = max(dated, key=lambda p: p.at or 0.0) if dated else None
    return ObjectRpo(obj.kind, obj.name, obj.label or obj.name, max(times) if times else None,
                     best, proofs, marks(obj, ver, dri))


def worst(objects: list[ObjectRpo], now: float) -> ObjectRpo | None:
    """The object that would lose the most: never proven first, then the oldest proven backup."""
    if not objects:
        return None
    return max(objects, key=lambda o: (o.proven_age(now) is None,
                                       o.proven_age(now) or 0.0, o.newest_age(now) or 0.0))

"""Facts + policy + now -> one finding per object. Pure: no I/O, the clock is an argument.

The store is the truth about what can be restored: when it was read, the newest backup it holds
is the last good one, and a backup the cluster calls completed but the bucket lacks does not
count. When the store could not be read, the cluster's view stands in and the finding is
*partial*: it may raise an alert but never clears one (see alert_states.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.config.inventory import Backups
from bot.watch import rules
from bot.watch.facts import Facts, ObjectFacts, SeenBackup

# worst first; the number is the sort weight and the order of /dr backups
SEVERITY = {"missed": 5, "unreadable": 4, "verify failed": 4, "drill failed": 4,
            "archiving failing": 3, "verify overdue": 2, "drill overdue": 2, "retention gap": 2,
            "unknown": 1, "ok": 0}
BAD = ("missed", "unreadable", "archiving failing", "verify failed", "drill failed",
       "verify overdue", "drill overdue")
DRILLED = ("longhorn", "cnpg")  # the kinds /dr drill proves (by namespace/name)
HISTORY = 30


@dataclass
class Finding:
    kind: str
    name: str
    label: str
    status: str  # a key of SEVERITY
    problem: str = ""
    notes: list[str] = field(default_factory=list)
    age: float | None = None  # seconds since the last good backup
    last_good: str = ""
    last_good_at: float | None = None  # epoch seconds
    max_age_hours: float = 0.0
    retention_days: int = 0
    retention: str = ""  # "ok (7 days)" or what is missing
    source: str = ""  # "store and cluster", "store only", "cluster only"
    partial: bool = False  # a side this object needs could not be read
    command: str = ""  # what to run about it
    history: list[list[Any]] = field(default_factory=list)  # [epoch, name, where, state]
    verified: dict[str, Any] = field(default_factory=dict)  # the latest verification record

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def bad(self) -> bool:
        return self.status in BAD

    @property
    def overdue_since(self) -> float | None:
        if self.last_good_at is None:
            return None
        return self.last_good_at + self.max_age_hours * 3600

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**data)


def span(seconds: float | None) -> str:
    """A duration for people: 3d 4h, 5h 12m, 42m, 30s."""
    if seconds is None:
        return "never"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours_, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours_}h"
    if hours_:
        return f"{hours_}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def retention_gap(times: list[datetime], now: datetime, days: int) -> str:
    """'' when kept backups cover the window; else what is missing.

    Covered means: a backup on each of the ``days - 1`` UTC days before today (today's may not
    have run yet; the age check covers it), so the oldest kept backup is that old at least.
    """
    if days <= 0:
        return ""
    if not times:
        return "no backups kept"
    have = {t.date() for t in times}
    missing = [now.date() - timedelta(days=i) for i in range(1, days)]
    missing = [d for d in missing if d not in have]
    if not missing:
        return ""
    oldest = min(times)
    if all(d < oldest.date() for d in missing):  # every hole is before the oldest kept
        return (f"oldest kept backup is {span((now - oldest).total_seconds())} old; "
                f"policy keeps {days} days")
    shown = ", ".join(f"{d:%m-%d}" for d in sorted(missing)[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return f"no backup on {shown}{more} (UTC)"


def command_for(obj: ObjectFacts) -> str:
    if obj.kind == "etcd":
        return "/dr etcd-sync"
    name = obj.label if obj.kind == "cnpg" and "/" in obj.label else obj.name
    if obj.kind == "longhorn" and "/" in obj.label:
        name = obj.label
    return f"/dr backup-now {obj.kind} {name}"


def _history(obj: ObjectFacts) -> list[list[Any]]:
    rows = []
    for seen in obj.backups.values():
        where = "store and cluster" if seen.in_store and seen.cluster_state else \
            "store" if seen.in_store else "cluster" if seen.cluster_state else "?"
        state = seen.cluster_state or ("completed" if seen.in_store else "?")
        if seen.in_store is False and seen.cluster_state == "completed":
            state = "not in bucket"
        rows.append([seen.at.timestamp() if seen.at else None, seen.name, where, state])
    rows.sort(key=lambda r: (r[0] is None, -(r[0] or 0)))
    return rows[:HISTORY]


def _newest(items: list[SeenBackup]) -> SeenBackup | None:
    dated = [s for s in items if s.at]
    return max(dated, key=lambda s: s.at) if dated else None  # type: ignore[arg-type,return-value]


def judge(obj: ObjectFacts, facts: Facts, limits: rules.BackupLimits, now: datetime) -> Finding:
    store = facts.sights.get(f"store:{obj.kind}")
    cluster = facts.sights["cluster"]
    store_ok, store_set = bool(store and store.ok), bool(store and store.configured)
    found = Finding(obj.kind, obj.name, obj.label or obj.name, "ok", notes=list(obj.notes),
                    max_age_hours=limits.max_age_hours, retention_days=limits.retention_days,
                    command=command_for(obj), history=_history(obj))
    found.source = " and ".join(s for s, ok in (("store", store_ok), ("cluster", cluster.ok)) if ok)
    found.source = (found.source or "nothing") + ("" if store_ok and cluster.ok else " only")
    found.partial = (store_set and not store_ok) or not cluster.ok
    if obj.error:
        found.status, found.problem = "unreadable", obj.error
        return found
    completed = [s for s in obj.backups.values() if s.cluster_state == "completed"]
    if store_ok:
        good = obj.store_last
        kept = [s.at for s in obj.backups.values() if s.in_store and s.at]
        for seen in completed:
            if seen.in_store is False and (good is None or (seen.at and good.at and seen.at > good.at)):
                why = seen.detail or "it is not in the bucket"
                found.notes.append(f"the cluster reports {seen.name} completed but {why}: "
                                   "not counted")
    elif store_set:
        good = _newest(completed)
        kept = [s.at for s in completed if s.at]
        found.notes.append(f"{store.what if store else 'the store'} could not be read: "
                           "the cluster's records stand in")
    else:
        good = _newest(completed)
        kept = [s.at for s in completed if s.at]
        found.notes.append(f"not verified in a bucket: the inventory has no backups.{obj.kind}_store")
    if not store_ok and not cluster.ok:
        found.status, found.problem = "unknown", "neither the store nor the cluster can be read"
        return found
    running = [s for s in obj.backups.values() if s.cluster_state == "running"]
    for seen in running:
        found.notes.append(f"{seen.name} is in progress"
                           + (f" since {seen.at:%Y-%m-%d %H:%M} UTC" if seen.at else "")
                           + ": not counted until it completes")
    if good is not None and good.at is not None:
        found.last_good, found.last_good_at = good.name, good.at.timestamp()
        found.age = (now - good.at).total_seconds()
    if obj.last_wal:
        wal, at = obj.last_wal
        found.notes.append(f"newest archived WAL {wal}, {span((now - at).total_seconds())} ago")
    gap = retention_gap(kept, now, limits.retention_days)
    found.retention = gap or f"ok ({limits.retention_days} days)" if limits.retention_days else ""
    if found.age is None:
        found.status, found.problem = "missed", "no completed backup found"
    elif found.age > limits.max_age_seconds:
        found.status = "missed"
        found.problem = (f"last good backup {span(found.age)} ago; policy: "
                         f"{limits.describe()}")
    if obj.archiving is False:
        text = f"WAL archiving is failing: {obj.archiving_message or 'no message'}"
        if found.status == "ok":
            found.status, found.problem = "archiving failing", text
            found.command = f"fix WAL archiving of {found.label}, then check /dr backups"
        else:
            found.notes.append(text)
    if found.status == "ok" and gap:
        found.status, found.problem = "retention gap", gap
    return found


@dataclass(frozen=True)
class ProofKind:
    """A kind of proof that an object's backups restore (a verification, a drill): what its
    record calls the time it ran, and how the watch words its failure and its absence."""

    failed: str  # the finding's status when the latest one failed
    overdue: str  # ... and when none passed within the rotation
    at: str  # the record's field with the time it ran
    noun: str  # "<noun> of backup <id> failed <ago> ago"
    never: str
    last_ok: str  # "<last_ok> <ago> ago"


VERIFIED = ProofKind("verify failed", "verify overdue", "verified_at", "verification",
                 "never verified restorable", "last verified restorable")
DRILLED_OK = ProofKind("drill failed", "drill overdue", "drilled_at", "restore drill",
                   "never drilled", "last drill passed")


def held_to(found: Finding, proof: ProofKind, record: dict[str, Any] | None, command: str,
            every_days: float, now: datetime) -> Finding:
    """Hold an object whose backups are otherwise fine to its proofs: the latest one failed
    (until one passes), or, with ``every_days`` set, none passed within that many days
    (exactly that old is still in time)."""
    if record and record.get("outcome") != "ok":
        ago = span(now.timestamp() - float(record.get(proof.at) or 0))
        found.status, found.command = proof.failed, command
        found.problem = (f"{proof.noun} of backup {record.get('backup_id')} failed {ago} ago: "
                         f"{record.get('problem') or 'no reason recorded'}")
        return found
    if every_days <= 0:
        return found
    last_ok = (record or {}).get("last_ok_at")
    if last_ok is None or now.timestamp() - float(last_ok) > every_days * 86400:
        found.status, found.command = proof.overdue, command
        found.problem = (proof.never if last_ok is None else
                         f"{proof.last_ok} {span(now.timestamp() - float(last_ok))} ago")
        found.problem += f"; policy: every {every_days:g} days"
    return found


def verification(found: Finding, record: dict[str, Any] | None, every_days: float,
                 now: datetime) -> Finding:
    """Hold an object to its verifications (bot/watch/verified.py; backups.verify_every)."""
    found.verified = dict(record or {})
    if found.status not in ("ok", "retention gap"):
        return found
    command = f"/dr verify {found.kind}" + ("" if found.kind == "etcd" else f" {found.name}")
    return held_to(found, VERIFIED, record, command, every_days, now)


def drill(found: Finding, record: dict[str, Any] | None, now: datetime,
          every_days: float = 0.0) -> Finding:
    """Hold a Longhorn volume or CNPG cluster to its restore drills (bot/watch/drilled.py, by
    ``kind:namespace/name``; backups.drill_every). Objects a drill cannot select (a volume
    without a PVC) are left alone."""
    if found.kind not in DRILLED or "/" not in found.label \
            or found.status not in ("ok", "retention gap"):
        return found
    return held_to(found, DRILLED_OK, record, f"/dr drill {found.kind} {found.label}",
                   every_days, now)


def evaluate(facts: Facts, backups: Backups, now: datetime,
             verified: dict[str, dict[str, Any]] | None = None,
             drilled: dict[str, dict[str, Any]] | None = None) -> list[Finding]:
    """One finding per watched object (excluded objects are left out), worst first.
    ``verified``: the latest verification record per ``kind:name`` (bot/watch/verified.py);
    ``drilled``: the latest drill record per ``kind:namespace/name`` (bot/watch/drilled.py)."""
    findings = []
    for obj in facts.objects:
        names = obj.aliases or (obj.name,)
        if rules.excluded(backups, obj.kind, names):
            continue
        found = judge(obj, facts, rules.limits(backups, obj.kind, names), now)
        found = verification(found, (verified or {}).get(found.key), backups.verify_every, now)
        findings.append(drill(found, (drilled or {}).get(f"{found.kind}:{found.label}"), now,
                              backups.drill_every))
    return sort(findings)


def sort(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (rules.KINDS.index(f.kind), -SEVERITY[f.status],
                                           -(f.age or 0), f.label))

"""The alert state machine, one per watched object and one per side, kept in Redis.

    ok --bad--> missed (one alert) --still bad, every reminder period--> reminder (in its thread)
       <--good, seen in full-- recovered (in its thread, with the outage length)

Only a change of state posts anything, so a check that runs every few minutes says nothing
while nothing changes, and a restarted process (which reads the state back) does not repeat an
alert. A finding that is *partial* (a side it needs could not be read) may open an alert but
never closes one. An unreachable side gets its own single "watch is blind" alert and recovery.
State changes and the alert events they imply are written in one MULTI/EXEC, so a crash can
neither lose an alert nor post one twice; notify.py delivers the events to the frontends.

Redis is not trusted: whoever can write to it must not make the bot post into the alert
channels. So each event is sealed by its writer (the worker running the check or the doctor)
with the record-signing key, for this stream, with when it was signed and an id of its own;
notify.py posts only an event it can open, signed within KEEP_SECONDS, whose id it has not
posted before (a copy of a real event written again is a replay).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from bot.errors import CommandError, ConfigError, RecordForged
from bot.records.signing import Signer
from bot.watch.evaluate import Finding, span
from bot.watch.facts import Facts, Sight
from bot.watch.rules import TITLES

STATE = "drbot:watch:state"  # hash: object key -> JSON state
BLIND = "drbot:watch:blind"  # hash: side -> JSON (since, what, error, alert)
FINDINGS = "drbot:watch:findings"  # hash: object key -> JSON finding (the latest check)
LAST = "drbot:watch:last"  # JSON: when the latest check ran and what it could see
EVENTS = "drbot:watch:alerts"  # stream of alert events for notify.py
CHECKING = "drbot:watch:checking"  # lease: one check at a time
STREAM_LENGTH = 10000
# "red" opens a doctor alert (bot.doctor.red_alerts); the others are the watch's
TYPES = frozenset({"missed", "reminder", "recovered", "gone", "blind", "blind-reminder", "sight",
                   "red", "report"})  # "report": the weekly readiness report (bot.readiness)
KEEP_SECONDS = 86400  # an alert event signed longer ago than this is not posted any more


@dataclass
class AlertEvent:
    alert: str  # the alert's id: its thread in every frontend
    type: str  # missed, reminder, recovered, gone, blind, blind-reminder, sight, red
    text: str
    id: str = ""  # this event's own id, set when sealed: a copy written again is a replay
    signed: float = 0.0  # when its writer signed it (real time, not the check's)
    file: str = ""  # "<job>:<sha256>:<name>": a file to post with it (bot/records/files.py)

    def sealed(self, signer: Signer) -> dict[str, str]:
        """The stream entry: this event signed for the alert stream, with a fresh id."""
        self.id = uuid.uuid4().hex
        record = {"alert": self.alert, "type": self.type, "text": self.text, "id": self.id}
        if self.file:
            record["file"] = self.file
        return {"sealed": signer.seal(record, EVENTS).decode()}

    @classmethod
    def opened(cls, signer: Signer, fields: dict[bytes, bytes]) -> AlertEvent:
        """The event of a stream entry, or RecordForged if drbot did not sign it for this
        stream (unsigned, forged, copied from elsewhere, or not an event)."""
        sealed = signer.opened(fields.get(b"sealed"), "alert event", EVENTS)
        record = sealed.record
        values = [record.get(name) for name in ("alert", "type", "text", "id")]
        if not all(isinstance(v, str) and v for v in values) or record["type"] not in TYPES:
            raise RecordForged("alert event: not an event drbot writes")
        alert, kind, text, event_id = values
        attached = record.get("file", "")
        return cls(alert, kind, text, event_id, sealed.signed,  # type: ignore[arg-type]
                   attached if isinstance(attached, str) else "")


def signer_of(signer: Signer | None) -> Signer:
    """The writer's signer: an alert event is never written unsigned."""
    if signer is None:
        raise ConfigError("alert events are signed: give the watch the record-signing key")
    return signer


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def title(f: Finding) -> str:
    return f"{TITLES[f.kind]} {f.label}"


def last_good(f: Finding) -> str:
    if f.age is None:
        return "no completed backup found"
    return f"last good backup {f.last_good}, {span(f.age)} ago"


def notes(f: Finding) -> str:
    return "".join(f"\n  note: {n}" for n in f.notes if "could not be read" not in n)


def opening(f: Finding) -> str:
    policy = f"every {f.max_age_hours:g}h" + (f", keep {f.retention_days} days"
                                              if f.retention_days else "")
    if f.status == "missed":
        return (f"⚠ backup missed: {title(f)}: {last_good(f)} (policy: {policy}).{notes(f)}\n"
                f"  run: {f.command}")
    return f"⚠ {f.status}: {title(f)}: {f.problem} ({last_good(f)}).{notes(f)}\n  next: {f.command}"


def reminder(f: Finding, since: float, now: float) -> str:
    return (f"still {f.status} after {span(now - since)}: {title(f)}: {f.problem or last_good(f)}."
            f"\n  {'run' if f.command.startswith('/dr') else 'next'}: {f.command}")


def recovered(f: Finding, since: float, now: float) -> str:
    end = f.last_good_at if f.last_good_at and f.last_good_at > since else now
    return (f"✓ recovered: {title(f)}: {last_good(f)}; outage {span(end - since)} "
            f"(since {utc(since)}).")


class Watch:
    """Reads and advances the watch's state in Redis."""

    def __init__(self, client: redis.Redis, signer: Signer | None = None) -> None:
        """``signer`` is needed to record (alert events are signed), not to read."""
        self.client = client
        self.signer = signer

    # -- one check at a time ---------------------------------------------------------------------
    @contextmanager
    def checking(self, ttl: int) -> Iterator[None]:
        token = uuid.uuid4().hex
        if not self.client.set(CHECKING, token, nx=True, ex=max(ttl, 1)):
            raise CommandError("a backup check is already running; its results will be in "
                               "/dr backups shortly")
        try:
            yield
        finally:
            self.client.eval("if redis.call('get', KEYS[1]) == ARGV[1] then "
                             "return redis.call('del', KEYS[1]) end return 0", 1, CHECKING, token)

    # -- reading ---------------------------------------------------------------------------------
    def _hash(self, key: str) -> dict[str, dict[str, Any]]:
        return {k.decode(): json.loads(v) for k, v in self.client.hgetall(key).items()}

    def states(self) -> dict[str, dict[str, Any]]:
        return self._hash(STATE)

    def blind(self) -> dict[str, dict[str, Any]]:
        return self._hash(BLIND)

    def findings(self) -> list[Finding]:
        return [Finding.from_dict(v) for v in self._hash(FINDINGS).values()]

    def last(self) -> dict[str, Any] | None:
        raw = self.client.get(LAST)
        return json.loads(raw) if raw else None

    # -- advancing -------------------------------------------------------------------------------
    def record(self, facts: Facts, findings: list[Finding], now: float, reminder_hours: float,
               alert_retention: bool = False, took: float = 0.0) -> list[AlertEvent]:
        """Store this check's findings and apply its state changes; returns the events posted."""
        reminder_s = reminder_hours * 3600
        states, blind = self.states(), self.blind()
        changes: dict[str, dict[str, Any] | None] = {}
        events: list[AlertEvent] = []
        for f in findings:
            event, state = self._object(f, states.get(f.key), now, reminder_s, alert_retention)
            if state is not None:
                changes[f.key] = state
            if event:
                events.append(event)
        if facts.sights["cluster"].ok:  # the cluster's lists are complete: absent means gone
            seen = {f.key for f in findings}
            for key, state in states.items():
                if key not in seen and state.get("state") == "bad" and \
                        f"store:{key.split(':')[0]}" in facts.sights:
                    changes[key] = None
                    events.append(AlertEvent(state["alert"], "gone", f"✓ {key.replace(':', ' ', 1)} "
                                        "is no longer watched (deleted or excluded); closing."))
        blind_changes, blind_events = self._sights(facts.sights, blind, now, reminder_s)
        events += blind_events
        self._write(facts, findings, changes, blind_changes, events, now, took)
        return events

    @staticmethod
    def _object(f: Finding, state: dict[str, Any] | None, now: float, reminder_s: float,
                alert_retention: bool) -> tuple[AlertEvent | None, dict[str, Any] | None]:
        bad = f.bad or (alert_retention and f.status == "retention gap")
        was_bad = bool(state and state.get("state") == "bad")
        if bad and not was_bad:
            since = min(f.overdue_since or now, now) if f.status == "missed" else now
            alert = f"{f.key}@{int(now)}"
            return AlertEvent(alert, "missed", opening(f)), {
                "state": "bad", "since": since, "last_post": now, "reminders": 0,
                "alert": alert, "status": f.status}
        if bad and state:
            if now - float(state["last_post"]) >= reminder_s:
                new = {**state, "last_post": now, "reminders": int(state["reminders"]) + 1,
                       "status": f.status}
                return AlertEvent(state["alert"], "reminder",
                             reminder(f, float(state["since"]), now)), new
            return None, None
        if was_bad and state and not f.partial:
            return AlertEvent(state["alert"], "recovered",
                         recovered(f, float(state["since"]), now)), {"state": "ok", "since": now}
        return None, None

    @staticmethod
    def _sights(sights: dict[str, Sight], blind: dict[str, dict[str, Any]], now: float,
                reminder_s: float) -> tuple[dict[str, dict[str, Any] | None], list[AlertEvent]]:
        changes: dict[str, dict[str, Any] | None] = {}
        events = []
        for side, sight in sights.items():
            if not sight.configured:
                continue
            was = blind.get(side)
            if sight.error and was is None:
                alert = f"blind:{side}@{int(now)}"
                changes[side] = {"since": now, "what": sight.what, "error": sight.error,
                                 "alert": alert, "last_post": now}
                events.append(AlertEvent(alert, "blind", (
                    f"⚠ backup watch is blind: cannot read {sight.what} since {utc(now)}: "
                    f"{sight.error}. Alerts that need it are held; /dr backups answers from "
                    "the other side.")))
            elif sight.error and was and now - float(was["last_post"]) >= reminder_s:
                changes[side] = {**was, "last_post": now, "error": sight.error}
                events.append(AlertEvent(was["alert"], "blind-reminder", (
                    f"still blind after {span(now - float(was['since']))}: cannot read "
                    f"{sight.what}: {sight.error}")))
            elif not sight.error and was:
                changes[side] = None
                events.append(AlertEvent(was["alert"], "sight", (
                    f"✓ backup watch sees {sight.what} again (blind for "
                    f"{span(now - float(was['since']))}).")))
        return changes, events

    def _write(self, facts: Facts, findings: list[Finding],
               changes: dict[str, dict[str, Any] | None],
               blind_changes: dict[str, dict[str, Any] | None], events: list[AlertEvent],
               now: float, took: float) -> None:
        last = {"at": now, "took": took, "objects": len(findings),
                "sights": {s: {"what": v.what, "ok": v.ok, "error": v.error,
                               "configured": v.configured} for s, v in facts.sights.items()}}
        signer = signer_of(self.signer)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(FINDINGS)
            if findings:
                pipe.hset(FINDINGS, mapping={f.key: json.dumps(f.to_dict()) for f in findings})
            for key, hash_ in ((STATE, changes), (BLIND, blind_changes)):
                for field, value in hash_.items():
                    if value is None:
                        pipe.hdel(key, field)
                    else:
                        pipe.hset(key, field, json.dumps(value))
            for event in events:
                pipe.xadd(EVENTS, event.sealed(signer), maxlen=STREAM_LENGTH,  # type: ignore[arg-type]
                          approximate=True)
            pipe.set(LAST, json.dumps(last))
            pipe.execute()

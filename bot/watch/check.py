"""One backup check: read both sides, judge every object, record the findings and state changes,
then ping the heartbeat. The clock is an argument, so tests move time instead of waiting."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import redis

from bot.config.inventory import Inventory
from bot.records.signing import Signer
from bot.watch import drilled, verified
from bot.watch import ping as heartbeat_ping
from bot.watch.alert_states import AlertEvent, Watch
from bot.watch.evaluate import Finding, evaluate
from bot.watch.facts import Facts, Sources, collect
from bot.watch.rules import validate


@dataclass
class CheckOutcome:
    facts: Facts
    findings: list[Finding]
    events: list[AlertEvent]
    took: float

    def summary(self) -> str:
        bad = sum(1 for f in self.findings if f.bad)
        blind = [s.what for s in self.facts.sights.values() if s.configured and not s.ok]
        text = f"checked {len(self.findings)} objects in {self.took:.1f}s: {bad} need attention"
        if blind:
            text += f"; could not read {', '.join(blind)}"
        return text + f"; {len(self.events)} alert event(s)"


def run(client: redis.Redis, sources: Sources, inventory: Inventory,
        now: datetime | None = None, *, key: bytes, ping: bool = True) -> CheckOutcome:
    """Run one check at ``now`` (default: the real time). Raises CommandError if one is running.
    ``key`` is the record-signing key: the alert events it writes are signed with it."""
    validate(inventory.backups)
    now = now or datetime.now(UTC)
    watch = Watch(client, Signer(key))
    started = time.monotonic()
    with watch.checking(ttl=max(inventory.backups.check_interval_seconds * 2, 600)):
        facts = collect(sources, inventory, now)
        records = {key: asdict(rec) for key, rec in verified.load(client).items()}
        drills = {key: asdict(rec) for key, rec in drilled.load(client).items()}
        findings = evaluate(facts, inventory.backups, now, records, drills)
        took = time.monotonic() - started
        events = watch.record(facts, findings, now.timestamp(), inventory.backups.reminder_hours,
                              inventory.backups.alert_retention, took)
    if ping:
        heartbeat_ping.ping(inventory.backups.heartbeat_url)
    return CheckOutcome(facts, findings, events, took)

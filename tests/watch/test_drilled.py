"""Drill results kept per object (bot/watch/drilled.py) as verification results are: the latest
drill and the latest that passed, garbage in Redis skipped, and the gauges on /metrics."""

from __future__ import annotations

from pathlib import Path

import redis
from prometheus_client import CollectorRegistry, generate_latest

from adapters.kubernetes.drills import CheckResult, DrillResult
from bot.watch import drilled
from bot.watch.gauges import install


def result(backup: str, at: float, ok: bool) -> DrillResult:
    check = CheckResult("files and bytes", ok, "4 files, 49163 bytes read" if ok
                        else "exit status 1: cat: read error")
    return DrillResult("longhorn", "apps/web-data", backup, at, restore_seconds=12.5,
                       duration=20.0, size=5 << 30, checks=[check])


def test_a_failed_drill_keeps_the_last_backup_that_passed(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(drilled.RESULTS)
    first = drilled.record(client, result("backup-1", 1000.0, True))
    assert first.ok and first.last_ok_backup == "backup-1" and first.restore_seconds == 12.5
    second = drilled.record(client, result("backup-2", 2000.0, False))
    assert not second.ok and second.problem == "files and bytes: exit status 1: cat: read error"
    assert (second.last_ok_at, second.last_ok_backup) == (1000.0, "backup-1")
    client.hset(drilled.RESULTS, "longhorn:forged", b"not json")
    assert set(drilled.load(client)) == {"longhorn:apps/web-data"}


def test_metrics_tell_drilled_age_outcome_and_restore_time(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(drilled.RESULTS)
    drilled.record(client, result("backup-1", 1000.0, True))
    drilled.record(client, result("backup-2", 2000.0, False))
    reg = CollectorRegistry()
    install(client, reg)
    text = generate_latest(reg).decode()
    labels = '{kind="longhorn",name="apps/web-data"}'
    assert f"drbot_backup_drill_ok{labels} 0.0" in text
    assert f"drbot_backup_drill_restore_seconds{labels} 12.5" in text
    assert f"drbot_backup_drilled_age_seconds{labels}" in text  # from the drill that passed


def test_the_scheduler_enqueues_the_drill_rotation_hourly_and_the_sweeper_quarter_hourly(
        redis_url: str, tmp_path: Path) -> None:
    from bot.watch.scheduler import WatchScheduler
    from tests.bot.harness import Harness

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("backups: {drill_every: 7, check_interval_seconds: 600}\n")
    harness = Harness(redis_url, tmp_path, DRBOT_INVENTORY=str(inventory))
    try:
        scheduler = WatchScheduler(harness.rt)
        for minute in range(0, 180, 5):  # three hours, ticking every five minutes
            scheduler.tick_all(1_800_000_000 + minute * 60)
        jobs = [harness.rt.store.get(j) for j in harness.rt.store.recent(200)]
        rotations = [j for j in jobs if j.command == "drill-next"]
        sweeps = [j for j in jobs if j.command == "drill-sweep"]
        assert len(rotations) == 3 and len(sweeps) == 12
        assert {j.account for j in rotations + sweeps} == {"system:scheduler"}
    finally:
        harness.close()


def test_a_failed_drill_alerts_until_a_drill_passes(redis_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from bot.watch.alert_states import Watch
    from bot.watch.evaluate import Finding, drill
    from bot.watch.facts import Facts, Sight

    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

    def finding(status: str = "ok") -> Finding:
        return Finding("longhorn", "pvc-a", "apps/web-data", status, max_age_hours=26)

    def record(ok: bool, at: datetime) -> dict[str, object]:
        return {"backup_id": "backup-9", "outcome": "ok" if ok else "failed",
                "drilled_at": at.timestamp(),
                "problem": "" if ok else "README: expected 'v2', got 'v1'"}

    failed = drill(finding(), record(False, now - timedelta(hours=3)), now)
    assert failed.status == "drill failed" and failed.bad
    assert failed.problem == ("restore drill of backup backup-9 failed 3h 0m ago: README: "
                              "expected 'v2', got 'v1'")
    assert failed.command == "/dr drill longhorn apps/web-data"
    assert drill(finding(), record(True, now), now).status == "ok"
    assert drill(finding(), None, now).status == "ok"  # never drilled: no alert (yet)
    assert drill(finding("missed"), record(False, now), now).status == "missed"

    from bot.records.signing import Signer
    from lab.fakes.frontend import KEY

    client = redis.Redis.from_url(redis_url)
    watch = Watch(client, Signer(KEY.encode()))
    facts = Facts(now, sights={"cluster": Sight("cluster", "the API")})
    opened = watch.record(facts, [failed], now.timestamp(), 12)
    closed = watch.record(facts, [drill(finding(), record(True, now), now)],
                          now.timestamp() + 3600, 12)
    assert [e.text.split(":")[0] for e in opened] == ["⚠ drill failed"]
    assert closed and closed[0].type == "recovered"


def test_drill_overdue_at_the_exact_boundary_alerts_and_clears_when_a_drill_passes(
        redis_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from bot.records.signing import Signer
    from bot.watch.alert_states import Watch
    from bot.watch.evaluate import Finding, drill
    from bot.watch.facts import Facts, Sight
    from lab.fakes.frontend import KEY

    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    every = 7.0

    def finding(kind: str = "cnpg", label: str = "databases/pg-main") -> Finding:
        return Finding(kind, label.rpartition("/")[2], label, "ok", max_age_hours=26)

    def passed(ago: timedelta) -> dict[str, object]:
        at = (now - ago).timestamp()
        return {"backup_id": "b-1", "outcome": "ok", "drilled_at": at, "last_ok_at": at}

    exactly = drill(finding(), passed(timedelta(days=7)), now, every)
    assert exactly.status == "ok"  # exactly drill_every old is still in time
    late = drill(finding(), passed(timedelta(days=7, seconds=1)), now, every)
    assert late.status == "drill overdue" and late.bad
    assert late.problem == "last drill passed 7d 0h ago; policy: every 7 days"
    assert late.command == "/dr drill cnpg databases/pg-main"
    never = drill(finding("longhorn", "apps/web-data"), None, now, every)
    assert never.status == "drill overdue" and never.problem == "never drilled; policy: every 7 days"
    assert drill(finding(), None, now, 0).status == "ok"  # no drill_every: no alert
    # a volume without a PVC cannot be drilled, etcd is not drilled: neither is held to it
    assert drill(finding("longhorn", "pvc-orphan"), None, now, every).status == "ok"
    assert drill(finding("etcd", "k3s/etcd"), None, now, every).status == "ok"
    # a failed drill after a passed one within the window still says failed, not overdue
    failed = {**passed(timedelta(days=1)), "outcome": "failed", "problem": "orders: no"}
    assert drill(finding(), failed, now, every).status == "drill failed"
    assert drill(finding("cnpg", "databases/pg-main"), failed, now, every).command == \
        "/dr drill cnpg databases/pg-main"

    client = redis.Redis.from_url(redis_url)
    client.delete("drbot:watch:state")
    watch = Watch(client, Signer(KEY.encode()))
    facts = Facts(now, sights={"cluster": Sight("cluster", "the API")})
    opened = watch.record(facts, [late], now.timestamp(), 12)
    assert [e.type for e in opened] == ["missed"]
    assert opened[0].text.startswith("⚠ drill overdue: ")
    assert "next: /dr drill cnpg databases/pg-main" in opened[0].text
    assert watch.record(facts, [drill(finding(), passed(timedelta(days=7, seconds=1)), now,
                                      every)], now.timestamp() + 60, 12) == []  # no repeat
    cleared = watch.record(facts, [drill(finding(), passed(timedelta(0)), now, every)],
                           now.timestamp() + 3600, 12)
    assert [e.type for e in cleared] == ["recovered"]

"""bot/watch/evaluate.py's proofs: an object whose backups are fine is held to its latest
verification and restore drill (a failed one until one passes; none passed within the rotation
is overdue, exactly that old still in time), and evaluate() hands each object its own records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.watch import evaluate as ev
from bot.watch.facts import Facts, ObjectFacts, SeenBackup, Sight

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # on the hour: a second off shows in span()
DAY = 86400.0


def fine(kind: str = "longhorn", label: str = "apps/web", status: str = "ok") -> ev.Finding:
    return ev.Finding(kind, "pvc-1" if kind != "etcd" else "k3s-etcd", label, status,
                      command="/dr backup-now")


def ago(seconds: float) -> float:
    return NOW.timestamp() - seconds


def failed(at: str = "verified_at", **extra: Any) -> dict[str, Any]:
    return {"outcome": "failed", at: ago(2 * 3600), "backup_id": "b7", **extra}


def test_a_failed_verification_holds_the_object_until_one_passes() -> None:
    found = ev.verification(fine(), failed(problem="checksum mismatch"), 0, NOW)
    assert (found.status, found.command, found.problem) == (
        "verify failed", "/dr verify longhorn pvc-1",
        "verification of backup b7 failed 2h 0m ago: checksum mismatch")
    assert found.bad
    passed = {"outcome": "ok", "verified_at": ago(3600), "last_ok_at": ago(3600)}
    found = ev.verification(fine(), passed, 0, NOW)
    assert (found.status, found.command, found.problem) == ("ok", "/dr backup-now", "")
    assert found.verified == passed


def test_a_failure_without_a_reason_or_a_time_says_so() -> None:
    """``verified_at`` missing reads as the epoch: the age is then since 1970, to the hour
    (NOW is on the hour, so one second off would read an hour less)."""
    found = ev.verification(fine(), {"outcome": "error", "backup_id": "b7"}, 0, NOW)
    assert found.status == "verify failed"
    days = int(NOW.timestamp()) // 86400
    assert found.problem == f"verification of backup b7 failed {days}d 12h ago: no reason recorded"


def test_a_verification_exactly_the_rotation_old_is_in_time_a_second_more_is_overdue() -> None:
    record = {"outcome": "ok", "last_ok_at": ago(DAY)}
    assert ev.verification(fine(), record, 1, NOW).status == "ok"
    record["last_ok_at"] = ago(DAY + 1)
    found = ev.verification(fine(), record, 1, NOW)
    assert (found.status, found.command, found.problem) == (
        "verify overdue", "/dr verify longhorn pvc-1",
        "last verified restorable 1d 0h ago; policy: every 1 days")
    half = ev.verification(fine(), {"outcome": "ok", "last_ok_at": ago(DAY / 2 + 1)}, 0.5, NOW)
    assert half.problem == "last verified restorable 12h 0m ago; policy: every 0.5 days"
    assert ev.verification(fine(), {"outcome": "ok", "last_ok_at": ago(DAY / 2)}, 0.5,
                           NOW).status == "ok"


def test_never_verified_is_overdue_only_with_a_rotation() -> None:
    assert ev.verification(fine(), None, 0, NOW).status == "ok"
    for record in (None, {"outcome": "ok"}):
        found = ev.verification(fine(), record, 7, NOW)
        assert (found.status, found.problem) == (
            "verify overdue", "never verified restorable; policy: every 7 days")
    recent = ev.verification(fine(), {"outcome": "ok", "last_ok_at": ago(60)}, 7, NOW)
    assert recent.status == "ok" and recent.problem == ""


def test_a_worse_finding_is_not_replaced_by_its_proofs_a_retention_gap_is() -> None:
    missed = fine(status="missed")
    missed.problem = "no completed backup found"
    found = ev.verification(missed, failed(), 7, NOW)
    assert (found.status, found.problem) == ("missed", "no completed backup found")
    assert found.verified == failed()  # kept for /dr backups all the same
    assert ev.drill(missed, failed("drilled_at"), NOW, 7).status == "missed"
    assert ev.verification(fine(status="retention gap"), failed(), 0, NOW).status == \
        "verify failed"
    assert ev.drill(fine(status="retention gap"), failed("drilled_at"), NOW).status == \
        "drill failed"


def test_etcd_is_verified_as_a_whole() -> None:
    found = ev.verification(fine("etcd", "k3s etcd"), None, 7, NOW)
    assert (found.status, found.command) == ("verify overdue", "/dr verify etcd")


def test_a_failed_drill_holds_a_volume_or_database_by_its_label() -> None:
    for kind, label in (("longhorn", "apps/web"), ("cnpg", "db/pg")):
        found = ev.drill(fine(kind, label), failed("drilled_at", problem="pod crashed"), NOW)
        assert (found.status, found.command, found.problem) == (
            "drill failed", f"/dr drill {kind} {label}",
            "restore drill of backup b7 failed 2h 0m ago: pod crashed")


@pytest.mark.parametrize(("kind", "label"), [("longhorn", "pvc-1"), ("etcd", "k3s/etcd")])
def test_objects_a_drill_cannot_select_are_left_alone(kind: str, label: str) -> None:
    """A volume without a PVC has no namespace/name to drill; etcd is never drilled."""
    found = ev.drill(fine(kind, label), failed("drilled_at"), NOW, 7)
    assert (found.status, found.problem) == ("ok", "")


def test_drills_are_overdue_only_with_a_rotation() -> None:
    assert ev.drill(fine(), None, NOW).status == "ok"
    found = ev.drill(fine(), None, NOW, 7)
    assert (found.status, found.command, found.problem) == (
        "drill overdue", "/dr drill longhorn apps/web", "never drilled; policy: every 7 days")
    found = ev.drill(fine(), {"outcome": "ok", "last_ok_at": ago(8 * DAY)}, NOW, 7)
    assert found.problem == "last drill passed 8d 0h ago; policy: every 7 days"


def test_evaluate_hands_each_object_its_own_records() -> None:
    """Verifications by ``kind:name``, drills by ``kind:namespace/name``, the rotations from
    the inventory."""
    from bot.config.inventory import BackupPolicy, Backups

    fresh = SeenBackup("f", NOW - timedelta(hours=1), "completed", True)
    objects = [ObjectFacts("longhorn", f"pvc-{x}", f"apps/{x}", aliases=(f"pvc-{x}", f"apps/{x}"),
                           backups={"f": fresh}, store_last=fresh) for x in "abc"]
    seen = Facts(NOW, {"cluster": Sight("cluster", "c"),
                       "store:longhorn": Sight("store:longhorn", "s")}, objects)
    recent = {"outcome": "ok", "last_ok_at": ago(3600)}
    policy = Backups(longhorn=BackupPolicy(max_age_hours=24, retention_days=0),
                     verify_every=7, drill_every=7)
    found = {f.label: f for f in ev.evaluate(
        seen, policy, NOW,
        verified={"longhorn:pvc-a": failed(), "longhorn:pvc-b": recent, "longhorn:pvc-c": recent},
        drilled={"longhorn:apps/b": failed("drilled_at"), "longhorn:apps/c": recent})}
    assert {label: f.status for label, f in found.items()} == {
        "apps/a": "verify failed", "apps/b": "drill failed", "apps/c": "ok"}
    assert found["apps/c"].verified == recent
    del seen.objects[:2]
    only = ev.evaluate(seen, policy, NOW, verified={"longhorn:pvc-c": recent})
    assert [(f.status, f.problem) for f in only] == [
        ("drill overdue", "never drilled; policy: every 7 days")]


def test_among_equally_bad_findings_the_oldest_backup_comes_first() -> None:
    """Then by label; a finding with no known age counts as age 0."""
    young, old = fine(label="apps/a", status="missed"), fine(label="apps/b", status="missed")
    young.age, old.age = 2 * DAY, 3 * DAY
    assert [f.label for f in ev.sort([young, old])] == ["apps/b", "apps/a"]
    unread = fine(label="apps/a", status="unreadable")
    failing = fine(label="apps/b", status="verify failed")
    failing.age = 0.5
    assert [f.label for f in ev.sort([unread, failing])] == ["apps/b", "apps/a"]

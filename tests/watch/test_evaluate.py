"""bot/watch/evaluate.py, pure: the exact boundaries of the maximum age and the retention, a
backup in progress, and each side (store, cluster) read alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.watch import evaluate as ev
from bot.watch.facts import Facts, ObjectFacts, SeenBackup, Sight
from bot.watch.rules import BackupLimits

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
DAY = BackupLimits(max_age_hours=24, retention_days=7)


def facts(store: bool | None = True, cluster: bool = True) -> Facts:
    """``store``: True read, False unreadable, None not configured."""
    sights = {"cluster": Sight("cluster", "the cluster", "" if cluster else "down")}
    sights["store:longhorn"] = Sight("store:longhorn", "the Longhorn store",
                                     "" if store in (True, None) else "denied",
                                     configured=store is not None)
    return Facts(NOW, sights)


def volume(*seen: SeenBackup, store_last: SeenBackup | None = None) -> ObjectFacts:
    return ObjectFacts("longhorn", "pvc-1", "apps/web", backups={s.name: s for s in seen},
                       store_last=store_last)


def backup(name: str, age: timedelta, state: str = "completed", in_store: bool | None = True
           ) -> SeenBackup:
    return SeenBackup(name, NOW - age, state, in_store)


def daily(days: int, newest: timedelta = timedelta(hours=1)) -> list[SeenBackup]:
    return [backup(f"b{i}", newest + timedelta(days=i)) for i in range(days)]


def judge(obj: ObjectFacts, seen: Facts | None = None, limits: BackupLimits = DAY) -> ev.Finding:
    return ev.judge(obj, seen or facts(), limits, NOW)


# -- maximum age ----------------------------------------------------------------------------------


def test_a_backup_exactly_max_age_old_is_still_good_one_second_more_is_missed() -> None:
    at_limit = backup("b", timedelta(hours=24))
    found = judge(volume(at_limit, *daily(7)[1:], store_last=at_limit))
    assert found.status == "ok" and found.age == 24 * 3600
    past = backup("b", timedelta(hours=24, seconds=1))
    found = judge(volume(past, *daily(7)[1:], store_last=past))
    assert found.status == "missed" and "1d 0h ago" in found.problem
    assert found.overdue_since == (NOW - timedelta(hours=24, seconds=1)).timestamp() + 24 * 3600


def test_an_override_moves_the_boundary() -> None:
    seen = backup("b", timedelta(hours=7))
    assert judge(volume(seen, store_last=seen), limits=BackupLimits(6, 0)).status == "missed"
    assert judge(volume(seen, store_last=seen), limits=BackupLimits(8, 0)).status == "ok"


def test_no_backup_at_all_is_missed() -> None:
    found = judge(volume())
    assert (found.status, found.problem, found.age) == ("missed", "no completed backup found", None)


# -- retention ------------------------------------------------------------------------------------


def test_retention_needs_a_backup_on_each_of_the_days_before_today() -> None:
    times = [s.at for s in daily(7) if s.at]
    assert ev.retention_gap(times, NOW, 7) == ""
    assert ev.retention_gap(times[:-1], NOW, 7).startswith("oldest kept backup is")
    holes = [t for t in times if t.date() != (NOW - timedelta(days=3)).date()]
    assert ev.retention_gap(holes, NOW, 7) == "no backup on 12-01 (UTC)"
    assert ev.retention_gap([], NOW, 7) == "no backups kept"
    assert ev.retention_gap([], NOW, 0) == ""


def test_a_retention_gap_is_reported_only_when_the_age_is_fine() -> None:
    kept = daily(5)
    found = judge(volume(*kept, store_last=kept[0]))
    assert found.status == "retention gap" and "policy keeps 7 days" in found.problem
    assert found.retention == found.problem
    full = daily(7)
    assert judge(volume(*full, store_last=full[0])).retention == "ok (7 days)"


# -- in progress ----------------------------------------------------------------------------------


def test_a_backup_in_progress_does_not_count_until_it_completes() -> None:
    old = backup("old", timedelta(hours=30))
    running = backup("new", timedelta(minutes=5), state="running", in_store=None)
    found = judge(volume(old, running, store_last=old), facts(store=None))
    assert found.status == "missed" and found.last_good == "old"
    assert any("new is in progress" in note for note in found.notes)


# -- one side only --------------------------------------------------------------------------------


def test_completed_in_the_cluster_but_absent_from_the_bucket_is_not_counted() -> None:
    old = backup("old", timedelta(hours=30))
    fresh = backup("fresh", timedelta(hours=1), in_store=False)
    found = judge(volume(old, fresh, store_last=old))
    assert found.status == "missed" and found.last_good == "old"
    assert any("fresh completed but it is not in the bucket" in n for n in found.notes)
    assert not found.partial and found.source == "store and cluster"


def test_an_unreadable_store_lets_the_cluster_stand_in_as_partial() -> None:
    fresh = backup("fresh", timedelta(hours=1), in_store=None)
    found = judge(volume(fresh), facts(store=False))
    assert found.last_good == "fresh" and found.partial and found.source == "cluster only"
    assert any("could not be read" in n for n in found.notes)


def test_the_store_alone_is_the_truth_when_the_cluster_is_down() -> None:
    kept = daily(7)
    found = judge(volume(store_last=kept[0]), facts(cluster=False))
    assert found.last_good == "b0" and found.partial and found.source == "store only"


def test_without_a_store_configured_the_cluster_counts_unverified() -> None:
    fresh = backup("fresh", timedelta(hours=1), in_store=None)
    found = judge(volume(fresh), facts(store=None))
    assert found.last_good == "fresh" and not found.partial
    assert any("not verified in a bucket" in n for n in found.notes)


def test_neither_side_readable_is_unknown() -> None:
    found = judge(volume(backup("b", timedelta(hours=1))), facts(store=False, cluster=False))
    assert found.status == "unknown" and found.partial


@pytest.mark.parametrize(("seconds", "text"), [(None, "never"), (30, "30s"), (120, "2m"),
                                               (3 * 3600 + 60, "3h 1m"), (86400 * 2 + 3600,
                                                                          "2d 1h")])
def test_span_reads_for_people(seconds: float | None, text: str) -> None:
    assert ev.span(seconds) == text


# -- what a finding says, in full -------------------------------------------------------------------


def test_a_missed_backup_in_full() -> None:
    seen = backup("b", timedelta(hours=30))
    found = judge(volume(seen, store_last=seen))
    assert (found.status, found.problem) == (
        "missed", "last good backup 1d 6h ago; policy: every 24h, keep 7 days")
    assert (found.last_good, found.age, found.max_age_hours, found.retention_days) == (
        "b", 30 * 3600, 24, 7)
    assert found.command == "/dr backup-now longhorn apps/web" and found.notes == []
    assert found.label == "apps/web" and found.key == "longhorn:pvc-1" and found.bad


def test_many_missing_days_are_listed_five_and_counted() -> None:
    times = [NOW - timedelta(days=9, hours=1)]
    assert ev.retention_gap(times, NOW, 9) == (
        "no backup on 11-26, 11-27, 11-28, 11-29, 11-30 and 3 more (UTC)")
    assert ev.retention_gap([NOW - timedelta(hours=1)], NOW, 2) == "oldest kept backup is 1h 0m " \
        "old; policy keeps 2 days"
    assert ev.retention_gap([NOW - timedelta(hours=1)], NOW, 1) == ""


def test_history_lists_where_each_backup_was_seen_newest_first() -> None:
    both = backup("both", timedelta(hours=1))
    ghost = backup("ghost", timedelta(hours=2), in_store=False)
    stored = SeenBackup("stored", NOW - timedelta(hours=3), "", True)
    running = SeenBackup("running", None, "running", None)
    found = judge(volume(both, ghost, stored, running, store_last=both))
    assert [row[1:] for row in found.history] == [
        ["both", "store and cluster", "completed"], ["ghost", "cluster", "not in bucket"],
        ["stored", "store", "completed"], ["running", "cluster", "running"]]
    assert found.history[0][0] == (NOW - timedelta(hours=1)).timestamp()


@pytest.mark.parametrize(("obj", "command"), [
    (ObjectFacts("etcd", "k3s-etcd", "k3s etcd"), "/dr etcd-sync"),
    (ObjectFacts("cnpg", "pg-main", "databases/pg-main"), "/dr backup-now cnpg databases/pg-main"),
    (ObjectFacts("cnpg", "pg-main", "pg-main"), "/dr backup-now cnpg pg-main"),
    (ObjectFacts("longhorn", "pvc-1", "apps/web"), "/dr backup-now longhorn apps/web"),
    (ObjectFacts("longhorn", "pvc-1", "pvc-1"), "/dr backup-now longhorn pvc-1"),
])
def test_each_finding_names_the_command_that_fixes_it(obj: ObjectFacts, command: str) -> None:
    assert ev.command_for(obj) == command


def test_failing_wal_archiving_is_the_problem_only_when_the_backup_is_fine() -> None:
    pg = ObjectFacts("cnpg", "pg", "db/pg", archiving=False, archiving_message="s3 denied",
                     last_wal=("000000010000000000000002", NOW - timedelta(minutes=90)))
    kept = daily(7)
    pg.backups, pg.store_last = {s.name: s for s in kept}, kept[0]
    seen = Facts(NOW, {"cluster": Sight("cluster", "c"), "store:cnpg": Sight("store:cnpg", "s")})
    found = ev.judge(pg, seen, DAY, NOW)
    assert (found.status, found.problem) == ("archiving failing",
                                             "WAL archiving is failing: s3 denied")
    assert found.command == "fix WAL archiving of db/pg, then check /dr backups"
    assert "newest archived WAL 000000010000000000000002, 1h 30m ago" in found.notes
    pg.store_last, pg.backups = None, {}
    found = ev.judge(pg, seen, DAY, NOW)
    assert found.status == "missed" and "WAL archiving is failing: s3 denied" in found.notes


def test_evaluate_applies_exclusions_and_overrides_and_sorts_worst_first() -> None:
    from bot.config.inventory import BackupPolicy, Backups

    fresh, stale = backup("f", timedelta(hours=2)), backup("s", timedelta(hours=30))
    objects = [ObjectFacts("longhorn", "pvc-a", "apps/a", aliases=("pvc-a", "apps/a"),
                           backups={"f": fresh}, store_last=fresh),
               ObjectFacts("longhorn", "pvc-b", "apps/b", aliases=("pvc-b", "apps/b"),
                           backups={"s": stale}, store_last=stale),
               ObjectFacts("longhorn", "pvc-c", "apps/scratch", aliases=("pvc-c", "apps/scratch"),
                           backups={}, store_last=None),
               ObjectFacts("longhorn", "pvc-d", "apps/d", aliases=("pvc-d", "apps/d"),
                           backups={"f": fresh}, store_last=fresh)]
    seen = facts()
    seen.objects = objects
    policy = Backups(longhorn=BackupPolicy(max_age_hours=24, retention_days=0,
                                           exclude=["apps/scr*"],
                                           overrides={"apps/d": {"max_age_hours": 1}}))
    found = ev.evaluate(seen, policy, NOW)
    assert [(f.label, f.status) for f in found] == [("apps/b", "missed"), ("apps/d", "missed"),
                                                      ("apps/a", "ok")]
    assert found[1].max_age_hours == 1 and found[0].retention == ""


def test_an_unreadable_object_is_reported_as_such() -> None:
    obj = volume(backup("b", timedelta(hours=1)))
    obj.error = "backup.cfg is not JSON"
    found = judge(obj)
    assert (found.status, found.problem) == ("unreadable", "backup.cfg is not JSON")
    assert found.bad


def test_findings_round_trip_and_know_when_they_became_overdue() -> None:
    seen = backup("b", timedelta(hours=2))
    found = judge(volume(seen, *daily(7)[1:], store_last=seen))
    assert ev.Finding.from_dict(found.to_dict()) == found
    assert found.overdue_since == (NOW - timedelta(hours=2)).timestamp() + 24 * 3600
    assert judge(volume()).overdue_since is None and not found.bad


def test_the_notes_in_full() -> None:
    old = backup("old", timedelta(hours=30))
    older_ghost = backup("older", timedelta(hours=40), in_store=False)  # older than the good one
    ghost = backup("ghost", timedelta(hours=1), in_store=False)
    running = SeenBackup("new", NOW - timedelta(minutes=5), "running", None)
    found = judge(volume(old, older_ghost, ghost, running, store_last=old))
    assert found.notes == [
        "the cluster reports ghost completed but it is not in the bucket: not counted",
        "new is in progress since 2026-12-04 11:55 UTC: not counted until it completes"]
    undated = judge(volume(SeenBackup("x", None, "running", None)), facts(store=None))
    assert undated.notes[-1] == "x is in progress: not counted until it completes"
    blind = judge(volume(backup("b", timedelta(hours=1), in_store=None)), facts(store=False))
    assert blind.notes == ["the Longhorn store could not be read: the cluster's records stand in"]
    nothing = judge(volume(), facts(store=False, cluster=False))
    assert (nothing.problem, nothing.source) == ("neither the store nor the cluster can be read",
                                                 "nothing only")


def test_only_backups_in_the_bucket_count_for_retention_when_it_was_read() -> None:
    kept = daily(7)
    for seen in kept[3:]:
        seen.in_store = False  # the cluster lists them; the bucket lost them
    found = judge(volume(*kept, store_last=kept[0]))
    assert found.status == "retention gap" and found.problem.startswith("oldest kept backup is")


def test_archiving_failing_without_a_message() -> None:
    pg = ObjectFacts("cnpg", "pg", "db/pg", archiving=False)
    kept = daily(7)
    pg.backups, pg.store_last = {s.name: s for s in kept}, kept[0]
    seen = Facts(NOW, {"cluster": Sight("cluster", "c"), "store:cnpg": Sight("store:cnpg", "s")})
    assert ev.judge(pg, seen, DAY, NOW).problem == "WAL archiving is failing: no message"


# -- boundaries the tests above leave open --------------------------------------------------------


def test_span_never_reads_negative() -> None:
    assert (ev.span(0), ev.span(-5)) == ("0s", "0s")  # a clock a little ahead of the cluster's


def test_retention_of_one_day_still_needs_a_backup() -> None:
    assert ev.retention_gap([], NOW, 1) == "no backups kept"


def test_a_hole_after_the_oldest_backup_is_listed_not_blamed_on_its_age() -> None:
    """Kept: today and 4 days ago; policy 7 days: missing 1 to 3 days ago (after the oldest)
    and 5 to 6 (before it): the days are listed."""
    times = [NOW - timedelta(hours=1), NOW - timedelta(days=4)]
    assert ev.retention_gap(times, NOW, 7) == "no backup on 11-28, 11-29, 12-01, 12-02, 12-03 (UTC)"


def test_exactly_five_missing_days_are_all_listed_six_are_counted() -> None:
    today = NOW - timedelta(hours=1)
    assert ev.retention_gap([today, NOW - timedelta(days=6)], NOW, 7) == \
        "no backup on 11-29, 11-30, 12-01, 12-02, 12-03 (UTC)"
    assert ev.retention_gap([today, NOW - timedelta(days=7)], NOW, 8) == \
        "no backup on 11-28, 11-29, 11-30, 12-01, 12-02 and 1 more (UTC)"


@pytest.mark.parametrize(("obj", "command"), [
    (ObjectFacts("longhorn", "pvc-1"), "/dr backup-now longhorn pvc-1"),
    (ObjectFacts("cnpg", "pg-main"), "/dr backup-now cnpg pg-main"),
])
def test_an_object_without_a_label_is_named_by_its_name(obj: ObjectFacts, command: str) -> None:
    assert ev.command_for(obj) == command


def test_history_of_a_backup_neither_side_vouches_for() -> None:
    lost = SeenBackup("lost", NOW - timedelta(hours=1), "", False)
    assert judge(volume(lost)).history == [[lost.at.timestamp(), "lost", "?", "?"]]


def test_the_cluster_stands_in_with_its_newest_completed_backup_and_all_it_keeps() -> None:
    """Store unreadable or not configured: the newest of the cluster's completed backups is the
    last good one (listed oldest first here), and every dated one counts for retention."""
    kept = [backup(f"b{i}", timedelta(hours=1) + timedelta(days=i), in_store=None)
            for i in (6, 5, 4, 3, 2, 1, 0)]
    for store in (False, None):
        found = judge(volume(*kept), facts(store=store))
        assert (found.status, found.last_good, found.retention) == ("ok", "b0", "ok (7 days)")


def test_the_objects_own_notes_come_first() -> None:
    seen = backup("b", timedelta(hours=1))
    obj = volume(seen, *daily(7)[1:], store_last=seen)
    obj.notes = ["PVC apps/web is being deleted"]
    assert judge(obj).notes == ["PVC apps/web is being deleted"]


def test_a_backup_the_bucket_lacks_as_old_as_the_good_one_is_not_reported() -> None:
    """Only a completed backup newer than the store's last good one is worth a note."""
    good = backup("good", timedelta(hours=1))
    twin = backup("twin", timedelta(hours=1), in_store=False)
    assert judge(volume(good, twin, *daily(7)[1:], store_last=good)).notes == []

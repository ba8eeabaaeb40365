"""bot/watch/evaluate.py, pure: the exact boundaries of the maximum age and the retention, a
backup in progress, and each side (store, cluster) read alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.watch import evaluate as ev
from bot.watch.facts import Facts, ObjectFacts, Seen, Sight
from bot.watch.policy import Limits

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
DAY = Limits(max_age_hours=24, retention_days=7)


def facts(store: bool | None = True, cluster: bool = True) -> Facts:
    """``store``: True read, False unreadable, None not configured."""
    sights = {"cluster": Sight("cluster", "the cluster", "" if cluster else "down")}
    sights["store:longhorn"] = Sight("store:longhorn", "the Longhorn store",
                                     "" if store in (True, None) else "denied",
                                     configured=store is not None)
    return Facts(NOW, sights)


def volume(*seen: Seen, store_last: Seen | None = None) -> ObjectFacts:
    return ObjectFacts("longhorn", "pvc-1", "apps/web", backups={s.name: s for s in seen},
                       store_last=store_last)


def backup(name: str, age: timedelta, state: str = "completed", in_store: bool | None = True
           ) -> Seen:
    return Seen(name, NOW - age, state, in_store)


def daily(days: int, newest: timedelta = timedelta(hours=1)) -> list[Seen]:
    return [backup(f"b{i}", newest + timedelta(days=i)) for i in range(days)]


def judge(obj: ObjectFacts, seen: Facts | None = None, limits: Limits = DAY) -> ev.Finding:
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
    assert judge(volume(seen, store_last=seen), limits=Limits(6, 0)).status == "missed"
    assert judge(volume(seen, store_last=seen), limits=Limits(8, 0)).status == "ok"


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

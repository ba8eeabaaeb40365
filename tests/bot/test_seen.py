"""The worker's record of the job versions it has seen, on its own disk (bot/worker/seen.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.worker.seen import FILE, SeenVersions


def test_versions_survive_a_new_instance_and_only_grow(tmp_path: Path) -> None:
    first = SeenVersions(tmp_path, keep=1800)
    first.note("0000aaaa", 3, now=1000.0)
    first.note("0000aaaa", 2, now=1001.0)  # older: ignored
    again = SeenVersions(tmp_path, keep=1800)  # a restarted worker
    assert again.newest("0000aaaa") == 3 and again.newest("0000bbbb") == 0
    assert not list(tmp_path.glob(".seen-*"))  # no temporary file left behind


def test_workers_sharing_the_folder_merge_what_each_saw(tmp_path: Path) -> None:
    one, two = SeenVersions(tmp_path, keep=1800), SeenVersions(tmp_path, keep=1800)
    one.note("0000aaaa", 4, now=1000.0)
    two.note("0000bbbb", 7, now=1000.0)  # two had not read one's entry: it is merged, not lost
    assert SeenVersions(tmp_path, keep=1800).entries.keys() == {"0000aaaa", "0000bbbb"}
    assert two.newest("0000aaaa") == 4


def test_entries_past_the_window_are_pruned(tmp_path: Path) -> None:
    seen = SeenVersions(tmp_path, keep=1800)
    seen.note("0000aaaa", 1, now=1000.0)
    seen.note("0000bbbb", 1, now=1000.0 + 1801)
    assert set(json.loads((tmp_path / FILE).read_text())) == {"0000bbbb"}


def test_a_damaged_file_is_reported_and_replaced(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / FILE).write_text("{not json")
    seen = SeenVersions(tmp_path, keep=1800)
    assert seen.entries == {} and "is unreadable" in caplog.text
    seen.note("0000aaaa", 2, now=1000.0)
    assert json.loads((tmp_path / FILE).read_text()) == {"0000aaaa": [2, 1000.0]}


def test_the_horse_writes_the_admitted_version_and_says_when_it_cannot(tmp_path: Path) -> None:
    """bot/worker/admission.py: the worker holds the version in memory, the work horse writes it
    on a thread of its own and waits for it before the job's first write."""
    from bot.records.jobs import Job
    from bot.worker.admission import Admission

    seen = SeenVersions(tmp_path / "ok", keep=1800)
    assert seen.hold("0000aaaa", 3, now=1000.0) and not seen.hold("0000aaaa", 2, now=1000.0)
    assert SeenVersions(tmp_path / "ok", keep=1800).newest("0000aaaa") == 0  # held, not yet written
    admitted = Admission(Job("0000aaaa", "exercise", {}, "alice", "console:alice", "console", "r",
                             version=3), seen, at=1000.0)
    admitted.begin()
    assert admitted.recorded() is None
    assert SeenVersions(tmp_path / "ok", keep=1800).newest("0000aaaa") == 3

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / FILE).mkdir()  # the file's place is taken: it cannot be written
    blocked = SeenVersions(tmp_path / "bad", keep=1800)
    blocked.hold("0000bbbb", 1, now=1000.0)
    refused = Admission(Job("0000bbbb", "exercise", {}, "alice", "console:alice", "console", "r",
                            version=1), blocked, at=1000.0)
    refused.begin()
    why = refused.recorded()
    assert why and "job 0000bbbb version 1" in why and "DRBOT_STATE_DIR writable" in why
    assert refused.recorded() == why  # asked again, still refused

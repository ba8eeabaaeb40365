"""The worker's record of the job versions it has seen, on its own disk (bot/worker/seen.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.worker.seen import FILE, Seen


def test_versions_survive_a_new_instance_and_only_grow(tmp_path: Path) -> None:
    first = Seen(tmp_path, keep=1800)
    first.note("0000aaaa", 3, now=1000.0)
    first.note("0000aaaa", 2, now=1001.0)  # older: ignored
    again = Seen(tmp_path, keep=1800)  # a restarted worker
    assert again.newest("0000aaaa") == 3 and again.newest("0000bbbb") == 0
    assert not list(tmp_path.glob(".seen-*"))  # no temporary file left behind


def test_workers_sharing_the_folder_merge_what_each_saw(tmp_path: Path) -> None:
    one, two = Seen(tmp_path, keep=1800), Seen(tmp_path, keep=1800)
    one.note("0000aaaa", 4, now=1000.0)
    two.note("0000bbbb", 7, now=1000.0)  # two had not read one's entry: it is merged, not lost
    assert Seen(tmp_path, keep=1800).entries.keys() == {"0000aaaa", "0000bbbb"}
    assert two.newest("0000aaaa") == 4


def test_entries_past_the_window_are_pruned(tmp_path: Path) -> None:
    seen = Seen(tmp_path, keep=1800)
    seen.note("0000aaaa", 1, now=1000.0)
    seen.note("0000bbbb", 1, now=1000.0 + 1801)
    assert set(json.loads((tmp_path / FILE).read_text())) == {"0000bbbb"}


def test_a_damaged_file_is_reported_and_replaced(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / FILE).write_text("{not json")
    seen = Seen(tmp_path, keep=1800)
    assert seen.entries == {} and "is unreadable" in caplog.text
    seen.note("0000aaaa", 2, now=1000.0)
    assert json.loads((tmp_path / FILE).read_text()) == {"0000aaaa": [2, 1000.0]}

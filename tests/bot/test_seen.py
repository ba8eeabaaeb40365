"""The worker's record of the job versions it has seen, on its own disk (bot/worker/seen.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot.records.jobs import Job
from bot.worker.admission import Admission
from bot.worker.seen import FILE, LEGACY, SLACK_LINES, SeenVersions


def lines(folder: Path) -> list[str]:
    return (folder / FILE).read_text().splitlines()


def test_versions_survive_a_new_instance_and_only_grow(tmp_path: Path) -> None:
    first = SeenVersions(tmp_path, keep=1800)
    first.note("0000aaaa", 3, now=1000.0)
    first.note("0000aaaa", 2, now=1001.0)  # older: ignored, not even written
    again = SeenVersions(tmp_path, keep=1800)  # a restarted worker
    assert again.newest("0000aaaa") == 3 and again.newest("0000bbbb") == 0
    assert lines(tmp_path) == ["0000aaaa 3 1000.000"]


def test_workers_sharing_the_folder_merge_what_each_saw(tmp_path: Path) -> None:
    one, two = SeenVersions(tmp_path, keep=1800), SeenVersions(tmp_path, keep=1800)
    one.note("0000aaaa", 4, now=1000.0)
    two.note("0000bbbb", 7, now=1000.0)  # two had not read one's entry: it is merged, not lost
    assert SeenVersions(tmp_path, keep=1800).entries.keys() == {"0000aaaa", "0000bbbb"}
    assert two.newest("0000aaaa") == 4
    one.note("0000cccc", 1, now=1000.0)  # one reads on from where it was: two's line too
    assert one.newest("0000bbbb") == 7


def test_the_journal_is_compacted_to_the_jobs_inside_the_window(tmp_path: Path) -> None:
    seen = SeenVersions(tmp_path, keep=1800)
    seen.note("0000aaaa", 1, now=1000.0)
    appended = SLACK_LINES + 64
    for n in range(appended):  # a job every 100 s: about 18 inside the window at any time
        seen.note(f"{n:08x}", 1, now=1100.0 + 100 * n)
    assert "0000aaaa" not in seen.entries and len(seen.entries) == 19
    kept = lines(tmp_path)
    assert len(kept) < appended and not any(k.startswith("0000aaaa ") for k in kept)
    assert len(kept) <= 2 * len(seen.entries) + SLACK_LINES
    assert not list(tmp_path.glob(".seen-*"))  # no temporary file left behind
    other = SeenVersions(tmp_path, keep=1800)
    assert other.newest(f"{appended - 1:08x}") == 1 and other.newest("0000aaaa") == 0


def test_a_worker_reads_the_whole_journal_again_after_another_compacted_it(tmp_path: Path) -> None:
    one, two = SeenVersions(tmp_path, keep=1800), SeenVersions(tmp_path, keep=1800)
    for n in range(SLACK_LINES):
        one.note(f"a{n:07x}", 5, now=1000.0)  # one has read (and written) this far
    before = (tmp_path / FILE).stat().st_ino
    last = 40
    for n in range(last + 1):  # two compacts: a much shorter file is put in place
        two.note(f"{n:08x}", 1, now=1100.0 + 100 * n)
    assert (tmp_path / FILE).stat().st_ino != before
    one.note("0000cccc", 1, now=1100.0 + 100 * last)  # its offset into the old file means nothing
    assert all(one.newest(job) == 1 for job in two.entries)  # all of the new file, from its start
    assert SeenVersions(tmp_path, keep=1800).newest("0000cccc") == 1


def test_damage_is_reported_and_a_torn_line_never_swallows_the_next(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / FILE).write_bytes(b"{not json\n0000aaaa 3 1000.0\n0000bb")  # torn by a crash
    seen = SeenVersions(tmp_path, keep=1800)
    assert seen.entries == {"0000aaaa": (3, 1000.0)} and "1 unreadable line(s)" in caplog.text
    seen.note("0000cccc", 2, now=1000.0)
    assert lines(tmp_path)[-2:] == ["0000bb", "0000cccc 2 1000.000"]
    assert SeenVersions(tmp_path, keep=1800).newest("0000cccc") == 2


def test_the_versions_of_the_earlier_whole_file_format_are_carried_over(tmp_path: Path) -> None:
    (tmp_path / LEGACY).write_text(json.dumps({"0000aaaa": [4, 1000.0]}))
    assert SeenVersions(tmp_path, keep=1800).newest("0000aaaa") == 4
    assert not (tmp_path / LEGACY).exists()
    assert SeenVersions(tmp_path, keep=1800).newest("0000aaaa") == 4


def admitted(seen: SeenVersions, job_id: str, version: int) -> Admission:
    assert seen.hold(job_id, version, now=1000.0)
    return Admission(Job(job_id, "exercise", {}, "alice", "console:alice", "console", "r",
                         version=version), seen, at=1000.0)


def in_a_horse(admission: Admission, worker_writes: bool = True) -> str | None:
    """Fork as the worker does (DrbotWorker.fork_work_horse): the child, as the horse, reports
    what ``recorded`` said; the parent, as the worker, writes the mark (unless it 'dies' first:
    then it closes its end of the pipe unwritten, as its death would)."""
    admission.before_fork()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the horse
        try:
            admission.in_horse()
            os.write(out_w, json.dumps(admission.recorded()).encode())
        finally:
            os._exit(0)
    os.close(out_w)
    if worker_writes:
        admission.in_worker()
    else:
        assert admission._channel is not None
        os.close(admission._channel[0])
        os.close(admission._channel[1])
    os.waitpid(pid, 0)
    with os.fdopen(out_r, "rb") as said:
        return json.loads(said.read())


def test_the_worker_writes_the_admitted_version_while_its_horse_starts(tmp_path: Path) -> None:
    """bot/worker/admission.py: the worker holds the version in memory, writes it right after
    the fork and tells the horse through a pipe; the horse waits for that before any write."""
    seen = SeenVersions(tmp_path / "ok", keep=1800)
    assert not seen.hold("0000aaaa", 0, now=1000.0)
    admission = admitted(seen, "0000aaaa", 3)
    assert SeenVersions(tmp_path / "ok", keep=1800).newest("0000aaaa") == 0  # held, not written
    assert in_a_horse(admission) is None
    assert SeenVersions(tmp_path / "ok", keep=1800).newest("0000aaaa") == 3


def test_a_horse_refuses_when_the_mark_cannot_be_written_or_its_worker_died(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / FILE).mkdir()  # the file's place is taken: it cannot be written
    why = in_a_horse(admitted(SeenVersions(tmp_path / "bad", keep=1800), "0000bbbb", 1))
    assert why and "job 0000bbbb version 1" in why and "DRBOT_STATE_DIR writable" in why
    assert "Is a directory" in why

    orphan = in_a_horse(admitted(SeenVersions(tmp_path / "ok", keep=1800), "0000cccc", 2),
                        worker_writes=False)
    assert orphan and "the worker ended before it wrote it" in orphan
    assert SeenVersions(tmp_path / "ok", keep=1800).newest("0000cccc") == 0


def test_without_a_worker_the_mark_is_written_in_place_and_a_refusal_stands(tmp_path: Path) -> None:
    """A runner started without a forking worker (run_job called directly) writes it itself."""
    admission = admitted(SeenVersions(tmp_path / "ok", keep=1800), "0000aaaa", 3)
    assert admission.recorded() is None
    assert SeenVersions(tmp_path / "ok", keep=1800).newest("0000aaaa") == 3
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / FILE).mkdir()
    refused = admitted(SeenVersions(tmp_path / "bad", keep=1800), "0000bbbb", 1)
    why = refused.recorded()
    assert why and refused.recorded() == why  # asked again, still refused


def test_the_horse_writes_down_its_last_write_for_the_worker_to_find(tmp_path: Path) -> None:
    """Admission.ended, in the horse after the job's last write: the worker (a copy of the same
    SeenVersions from before the fork) finds the version on disk instead of reading the record
    again (DrbotWorker.saw)."""
    worker = SeenVersions(tmp_path, keep=1800)
    worker.hold("0000aaaa", 3, now=1000.0)
    horse = admitted(SeenVersions(tmp_path, keep=1800), "0000aaaa", 3)  # what the horse inherits
    assert horse.recorded() is None  # the admitted version, before the job's first write
    horse.ended(3)  # no write of its own after the admitted version: nothing to add
    horse.settled()
    assert lines(tmp_path) == ["0000aaaa 3 1000.000"]
    horse.ended(7)
    horse.settled()  # what the horse waits for before it exits
    assert worker.newest("0000aaaa") == 3  # not read yet
    assert worker.newest_on_disk("0000aaaa") == 7
    assert lines(tmp_path) == ["0000aaaa 3 1000.000", f"0000aaaa 7 {lines(tmp_path)[1].split()[2]}"]

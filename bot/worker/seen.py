"""The newest version of each job record a worker has seen, kept on the worker's own disk.

Why not only in memory: a worker admits a signed record that asks for work only if it is newer
than any version of that job it saw (so a record captured from Redis and written back cannot run
twice). Kept in memory alone, that knowledge died with the process, and a restarted worker would
run a written-back record again within the actionable window. Why not in Redis: whoever can write
to Redis is exactly whom this guards against.

So the versions live in a journal in the worker's state directory (DRBOT_STATE_DIR): one line
``<job id> <version> <when seen>`` appended and fdatasync'd before a version's job takes effect.
An append is one short write and one flush to disk, whatever the number of jobs; rewriting the
whole file each time (as a JSON file once was) cost a parse, a dump and two fsyncs per job, which
a job's start and the next job's admission waited for. The journal is compacted to the versions
of jobs seen within twice the actionable window (older records are refused as stale anyway) once
it holds far more lines than that. Workers that share the directory share the journal: each
append takes a lock and first reads what the others appended, so none of them loses what another
saw. A line torn by a crash is ignored, and the next append starts on a line of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("drbot.worker")
FILE = "seen-versions.log"
LEGACY = "seen-versions.json"  # the whole-file format of earlier versions, read once and removed
Entries = dict[str, tuple[int, float]]  # job id: (newest version, when it was seen)
SLACK_LINES = 256  # compact once the journal holds this many lines beyond twice the live ones


def default_dir() -> Path:
    """Where state belongs by XDG, under drbot's own folder."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "drbot" / "worker"


def line(job_id: str, version: int, when: float) -> bytes:
    return f"{job_id} {version} {when:.3f}\n".encode()


def merge(into: Entries, job_id: str, entry: tuple[int, float]) -> None:
    """The newest version wins."""
    if entry[0] > into.get(job_id, (0, 0.0))[0]:
        into[job_id] = entry


def parse(lines: list[bytes], into: Entries) -> int:
    """Merge journal lines into ``into``; returns how many were unreadable."""
    bad = 0
    for raw in lines:
        try:
            job_id, version, when = raw.decode().split()
            merge(into, job_id, (int(version), float(when)))
        except (UnicodeError, ValueError):
            bad += 1
    return bad


class SeenVersions:
    def __init__(self, folder: Path | None, keep: float) -> None:
        """``folder`` None: memory only (a worker started without a runtime, in tests)."""
        self.path = folder / FILE if folder else None
        self.keep = keep
        self.entries: Entries = {}
        self._unwritten: Entries = {}  # held, not yet appended
        self._read_to = (0, 0)  # (inode, offset) of the journal read so far
        self._lines = 0  # lines in the journal as last read
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with self._locked():
                self._adopt_legacy()
                self._catch_up()

    def newest(self, job_id: str) -> int:
        return self.entries.get(job_id, (0, 0.0))[0]

    def newest_on_disk(self, job_id: str) -> int:
        """``newest`` after reading what was appended since (by a work horse, or another worker)."""
        if self.path is not None:
            with self._locked():
                self._catch_up()
        return self.newest(job_id)

    def note(self, job_id: str, version: int, now: float) -> None:
        """Remember ``version`` of ``job_id`` (if newer), on disk before this returns."""
        if self.hold(job_id, version, now):
            self.flush(now)

    def hold(self, job_id: str, version: int, now: float) -> bool:
        """Remember ``version`` of ``job_id`` in memory only (whether it was newer); ``flush``
        must have written it before anything of that version takes effect."""
        if version <= self.newest(job_id):
            return False
        self.entries[job_id] = self._unwritten[job_id] = (version, now)
        return True

    def flush(self, now: float) -> None:
        """Append what this worker holds to the journal (after what the others appended)."""
        if self.path is None:
            self._unwritten.clear()
            self._prune(self.entries, now)
            return
        with self._locked():
            self._catch_up()
            held, self._unwritten = self._unwritten, {}
            try:
                self._append(b"".join(line(k, v, w) for k, (v, w) in held.items()))
            except BaseException:
                self._unwritten = {**held, **self._unwritten}
                raise
            self._prune(self.entries, now)
            if self._lines > 2 * len(self.entries) + SLACK_LINES:
                self._compact()

    def _prune(self, entries: Entries, now: float) -> None:
        for key in [k for k, (_, when) in entries.items() if now - when > self.keep]:
            del entries[key]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.path is not None
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        """Read what was appended since this instance last read (all of it after a compaction,
        which puts a new file in place)."""
        assert self.path is not None
        try:
            with open(self.path, "rb") as journal:
                inode = os.fstat(journal.fileno()).st_ino
                start = self._read_to[1] if self._read_to[0] == inode else 0
                journal.seek(start)
                data = journal.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("%s is unreadable (%s); starting from what this worker sees from now on",
                      self.path, exc.strerror)
            return
        whole = data[:data.rfind(b"\n") + 1]  # a torn last line is read once it is ended
        lines = whole.splitlines()
        self._lines = (self._lines if start else 0) + len(lines)
        self._read_to = (inode, start + len(whole))
        if bad := parse(lines, self.entries):
            log.error("%s: %d unreadable line(s) ignored", self.path, bad)

    def _append(self, data: bytes) -> None:
        assert self.path is not None
        if not data:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # after a line torn by a crash: never glue onto it
            os.write(fd, data)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        if not size:
            self._sync_folder()  # a new file: its name must survive a power loss too
        self._lines += data.count(b"\n")
        if self._read_to[1] == size:
            self._read_to = (self._read_to[0] or os.stat(self.path).st_ino, size + len(data))

    def _compact(self) -> None:
        """Put a journal of only the live entries in place (atomically: temporary file, fsync,
        rename); the others read it whole at their next append."""
        assert self.path is not None
        data = b"".join(line(k, v, w) for k, (v, w) in self.entries.items())
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".seen-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._sync_folder()
        self._read_to, self._lines = (os.stat(self.path).st_ino, len(data)), len(self.entries)

    def _sync_folder(self) -> None:
        assert self.path is not None
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _adopt_legacy(self) -> None:
        """Carry the versions of an earlier whole-file JSON record into the journal, once."""
        assert self.path is not None
        legacy = self.path.with_name(LEGACY)
        try:
            raw = json.loads(legacy.read_text(encoding="utf-8"))
            found = {str(k): (int(v[0]), float(v[1])) for k, v in raw.items()}
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            log.error("%s is unreadable (%s); starting from what this worker sees from now on",
                      legacy, type(exc).__name__)
            found = {}
        self._catch_up()
        self._append(b"".join(line(k, v, w) for k, (v, w) in found.items()))
        for job_id, entry in found.items():
            merge(self.entries, job_id, entry)
        with contextlib.suppress(OSError):
            legacy.unlink()

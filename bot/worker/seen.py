"""The newest version of each job record a worker has seen, kept on the worker's own disk.

Why not only in memory: a worker admits a signed record that asks for work only if it is newer
than any version of that job it saw (so a record captured from Redis and written back cannot run
twice). Kept in memory alone, that knowledge died with the process, and a restarted worker would
run a written-back record again within the actionable window. Why not in Redis: whoever can write
to Redis is exactly whom this guards against.

So the versions live in a small JSON file in the worker's state directory (DRBOT_STATE_DIR),
written atomically (a temporary file, fsync, rename) before a job is admitted, and pruned of
jobs not seen for twice the actionable window (older records are refused as stale anyway).
Workers that share the directory share the file: each write takes a lock and merges what the
others wrote, so none of them loses what another saw.
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
FILE = "seen-versions.json"
Entries = dict[str, tuple[int, float]]  # job id: (newest version, when it was seen)


def default_dir() -> Path:
    """Where state belongs by XDG, under drbot's own folder."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "drbot" / "worker"


class SeenVersions:
    def __init__(self, folder: Path | None, keep: float) -> None:
        """``folder`` None: memory only (a worker started without a runtime, in tests)."""
        self.path = folder / FILE if folder else None
        self.keep = keep
        self.entries: Entries = {}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.entries = self._read()

    def newest(self, job_id: str) -> int:
        return self.entries.get(job_id, (0, 0.0))[0]

    def note(self, job_id: str, version: int, now: float) -> None:
        """Remember ``version`` of ``job_id`` (if newer), on disk before this returns."""
        if self.hold(job_id, version, now):
            self.flush(now)

    def hold(self, job_id: str, version: int, now: float) -> bool:
        """Remember ``version`` of ``job_id`` in memory only (whether it was newer); ``flush``
        must have written it before anything of that version takes effect."""
        if version <= self.newest(job_id):
            return False
        self.entries[job_id] = (version, now)
        return True

    def flush(self, now: float) -> None:
        """Write what this worker holds to disk (merged with what the others wrote there)."""
        if self.path is None:
            self._prune(self.entries, now)
            return
        with self._locked():
            merged = self._read()
            for key, (ver, when) in self.entries.items():
                if ver > merged.get(key, (0, 0.0))[0]:
                    merged[key] = (ver, when)
            self._prune(merged, now)
            self._write(merged)
            self.entries = merged

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

    def _read(self) -> Entries:
        assert self.path is not None
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): (int(v[0]), float(v[1])) for k, v in raw.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            # the worker's own disk, not Redis: damage here is a fault, not an attack; the
            # actionable window still bounds what could be started again
            log.error("%s is unreadable (%s); starting from what this worker sees from now on",
                      self.path, type(exc).__name__)
            return {}

    def _write(self, entries: Entries) -> None:
        assert self.path is not None
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".seen-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({k: [v, round(w, 3)] for k, (v, w) in entries.items()}, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power loss
        finally:
            os.close(dir_fd)

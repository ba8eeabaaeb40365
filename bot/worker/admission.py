"""What the worker hands the work horse it forks for an admitted job, and the horse's half of
the admission: writing down that this version was seen.

The worker reads and verifies the job's signed record to admit it (bot/worker/worker.py), so the
horse starts from that record instead of reading and verifying it again: a start one round trip
and one signature check shorter. The record of the versions seen must be on disk before the job
takes any effect (a restarted worker must not run a written-back copy again), and writing it
takes two fsyncs: the horse writes it on a thread of its own while rq prepares the job and the
runner plans it, and waits for it before the job's first write (``recorded``). Why the horse
and not the worker: the file's lock is an flock, which a horse forked while the worker held it
would keep holding, through its copy of the descriptor, until it ends.
"""

from __future__ import annotations

import _thread
import contextlib
import threading
import time
from dataclasses import dataclass, field

from bot.records.jobs import Job, Latest
from bot.worker.seen import SeenVersions


@dataclass
class Admission:
    """One admitted record: the job, the version admitted, and its still unwritten seen-mark."""

    record: Job
    seen: SeenVersions | None = None
    at: float = 0.0
    latest: Latest = field(default_factory=Latest)  # the record's bytes: the horse's first write
    _written: threading.Event | None = field(default=None, repr=False)
    _error: OSError | None = field(default=None, repr=False)
    _done: bool = field(default=False, repr=False)
    _ending: threading.Event | None = field(default=None, repr=False)

    @property
    def job_id(self) -> str:
        return self.record.id

    @property
    def version(self) -> int:
        return self.record.version

    def begin(self) -> None:
        """In the work horse, as early as possible: start writing the seen-mark."""
        if self.seen is None or self._written is not None:
            return
        self._written = threading.Event()
        # not threading.Thread: its start() waits until the new thread runs, which on a busy
        # machine costs the horse milliseconds before it can go on
        _thread.start_new_thread(self._write, ())

    def _write(self) -> None:
        assert self.seen is not None
        try:
            self.seen.flush(self.at)
        except OSError as exc:
            self._error = exc
        except BaseException as exc:  # noqa: BLE001  (whatever it was, the mark is not written)
            self._error = OSError(0, f"{type(exc).__name__}: {exc}")
        finally:
            if self._written is not None:
                self._written.set()

    def recorded(self) -> str | None:
        """Wait until the seen-mark is on disk; why the job must not run if it could not be
        written (None once it is). Writes it here if ``begin`` was never called."""
        if self._done or self.seen is None:
            return None
        if self._written is None:
            self._write()
        else:
            self._written.wait()
        self._done = self._error is None
        if self._error is None:
            return None
        return (f"cannot record that job {self.job_id} version {self.version} was seen "
                f"({self._error.strerror}); make DRBOT_STATE_DIR writable for the worker")

    def ended(self, version: int) -> None:
        """In the horse, after the job's last write: write down that version (on a thread of its
        own, while rq stores the job's result), so that the worker finds it on disk and need not
        read the record again before it takes the next job (DrbotWorker.saw). If it cannot be
        written, the worker does it the long way."""
        if self.seen is None or version <= self.version or self._ending is not None:
            return
        self._ending = threading.Event()
        _thread.start_new_thread(self._write_end, (version,))

    def _write_end(self, version: int) -> None:
        assert self.seen is not None and self._ending is not None
        try:
            with contextlib.suppress(OSError):
                self.seen.note(self.job_id, version, time.time())
        finally:
            self._ending.set()

    def settled(self) -> None:
        """Before the horse exits: the version ``ended`` writes is on disk (or failed)."""
        if self._ending is not None:
            self._ending.wait(30)

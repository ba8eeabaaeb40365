"""What the worker hands the work horse it forks for an admitted job, and the seen-mark of
that admission.

The worker reads and verifies the job's signed record to admit it (bot/worker/worker.py), so the
horse starts from that record instead of reading and verifying it again: a start one round trip
and one signature check shorter. The record of the versions seen must be on disk before the job
takes any effect (a restarted worker must not run a written-back copy again), and writing it
takes a flush to disk. The worker writes it right after the fork, while the horse connects to
Redis and plans; it tells the horse through a pipe ("ok", or why not), and the horse waits for
that word before the job's first write (``recorded``). The worker is idle then, so the write
costs the horse nothing, where a thread of the horse's own slowed its start. The file's lock is
taken only after the fork, so the horse never inherits it held. A horse whose worker died
before it wrote the mark reads no word, and refuses the job.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import threading
import time
from dataclasses import dataclass, field

from bot.records.jobs import Job, Latest
from bot.worker.seen import SeenVersions

OK = b"ok"


@dataclass
class Admission:
    """One admitted record: the job, the version admitted, and its still unwritten seen-mark."""

    record: Job
    seen: SeenVersions | None = None
    at: float = 0.0
    latest: Latest = field(default_factory=Latest)  # the record's bytes: the horse's first write
    _channel: tuple[int, int] | None = field(default=None, repr=False)  # (read, write) ends
    _refusal: str | None = field(default=None, repr=False)
    _done: bool = field(default=False, repr=False)
    _ending: threading.Event | None = field(default=None, repr=False)

    @property
    def job_id(self) -> str:
        return self.record.id

    @property
    def version(self) -> int:
        return self.record.version

    def before_fork(self) -> None:
        """In the worker: the pipe that will carry the word about the seen-mark."""
        if self.seen is not None and self._channel is None:
            self._channel = os.pipe()

    def in_worker(self) -> None:
        """In the worker, right after the fork: write the seen-mark, tell the horse."""
        if self._channel is None:
            return
        read, write = self._channel
        os.close(read)
        try:
            os.write(write, self._write())
        except OSError:
            pass  # the horse has ended already: nobody is waiting for the word
        finally:
            os.close(write)

    def in_horse(self) -> None:
        """In the work horse, first thing: only the worker writes into the pipe."""
        if self._channel is not None:
            os.close(self._channel[1])

    def _write(self) -> bytes:
        """Write the seen-mark: ``OK``, or why it could not be written."""
        assert self.seen is not None
        try:
            self.seen.flush(self.at)
        except OSError as exc:
            return (exc.strerror or type(exc).__name__).encode()
        except Exception as exc:  # noqa: BLE001  (whatever it was, the mark is not written)
            return type(exc).__name__.encode()
        return OK

    def recorded(self) -> str | None:
        """Wait until the seen-mark is on disk; why the job must not run if it could not be
        written (None once it is). Writes it here when no worker forked this process."""
        if self._done or self.seen is None:
            return None
        if self._refusal is None:
            word = self._write() if self._channel is None else self._word()
            if word == OK:
                self._done = True
                return None
            why = word.decode(errors="replace") or "the worker ended before it wrote it"
            self._refusal = (f"cannot record that job {self.job_id} version {self.version} was "
                             f"seen ({why}); make DRBOT_STATE_DIR writable for the worker")
        return self._refusal

    def _word(self) -> bytes:
        assert self._channel is not None
        read = self._channel[0]
        chunks = []
        try:
            while chunk := os.read(read, 512):
                chunks.append(chunk)
        finally:
            os.close(read)
        return b"".join(chunks)

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

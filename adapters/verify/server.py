"""A throwaway server (etcd, PostgreSQL) started from restored data, stopped whatever happens.

It runs in its own session with an argument list and a minimal environment, its output goes to a
log file in the scratch directory, and its pid goes to ``hooks.spawned`` so that the worker can
end it if the job dies. Leaving the ``with`` block ends the whole process tree.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from adapters.errors import AdapterError, Cancelled, NotFound, TimedOut
from adapters.progress import Hooks, one_line
from adapters.subprocesses import kill_tree


class Throwaway:
    """``with Throwaway(argv, log, hooks, what) as server: server.wait_for(...)``."""

    def __init__(self, argv: Sequence[str], log: Path, hooks: Hooks, what: str, *,
                 env: Mapping[str, str], cwd: str | None = None,
                 stop_signal: signal.Signals = signal.SIGTERM, user: str | None = None) -> None:
        self.argv = list(argv)
        self.log = log
        self.hooks = hooks
        self.what = what
        self.env = dict(env)
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Throwaway:
        with self.log.open("ab") as out:
            try:
                self.proc = subprocess.Popen(  # noqa: S603 - an argument list, never a shell
                    self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=self.env, cwd=self.cwd, start_new_session=True,
                    **_as_user(self.user))
            except FileNotFoundError:
                raise NotFound(f"{self.what}: the program {self.argv[0]!r} was not found; "
                               "install it or fix its path") from None
        self.hooks.spawned(self.proc.pid)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            kill_tree(self.proc.pid, grace=10.0, first=self.stop_signal)
        self.proc.wait()

    def log_tail(self, lines: int = 4) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "no output"
        return one_line(" | ".join(text[-lines:]), 400) or "no output"

    def wait_for(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until true; fail at once when the server exits or the job is
        cancelled, and after ``timeout`` seconds."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            # the cancel first: asked for while the server started, it stands even if the
            # server is ready by now (a verification cancelled goes no further)
            if self.hooks.cancelled():
                raise Cancelled(f"cancelled while waiting for {what}; the server was stopped "
                                "and its scratch space removed")
            if ready():
                return
            code = self.proc.poll()
            if code is not None:
                raise ServerExited(f"{self.what} exited with code {code} before {what}: "
                                   f"{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimedOut(f"{self.what} did not reach {what} within {timeout:g} s: "
                               f"{self.log_tail()}")
            time.sleep(0.2)


def _as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments to run as ``user`` (its primary group, no other groups)."""
    if user is None:
        return {}
    import pwd

    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class ServerExited(AdapterError):
    """The throwaway server stopped on its own; its last log lines are in the message."""

"""Running child processes so that they can always be stopped, and finding them again later.

Every child runs in its own session (``start_new_session=True``) with an argument list, never a
shell string. Its pid goes to ``hooks.spawned`` so the caller can record it; ``/dr retry``
later asks ``alive(pid, start_ticks)`` whether it still runs. Stopping escalates SIGINT ->
SIGTERM -> SIGKILL over the whole process group, because tools like Terraform clean up (release
the state lock) only when they get the chance.

Process facts come from ``/proc`` (Linux only): ``/proc/<pid>/stat`` field 22 is the start time in
clock ticks since boot, which tells a live process apart from a later one that reused its pid.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from adapters.errors import AdapterError, Cancelled, NotFound, TimedOut
from adapters.progress import Hooks

_POLL = 0.2
_EOF_WAIT = 2.0

# What a tool may take from the worker's own environment. Everything else stays behind: the
# worker's settings and secrets (its signing key, REDIS_URL with its password, tokens) must
# never reach a playbook, its tasks or Terraform. A tool's own settings come from the inventory.
BASE_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER",
            "LOGNAME", "SHELL", "TERM", "KUBECONFIG", "PYTHONPATH", "VIRTUAL_ENV", "SSH_AUTH_SOCK",
            "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "http_proxy", "https_proxy",
            "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
_EOF = object()


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` this module needs."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    start_ticks: int


def proc_stat(pid: int) -> ProcStat | None:
    """Read ``/proc/<pid>/stat``; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    rest = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=rest[0],
        ppid=int(rest[1]),
        pgrp=int(rest[2]),
        session=int(rest[3]),
        start_ticks=int(rest[19]),
    )


def start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (stat field 22), None if it is gone."""
    st = proc_stat(pid)
    return st.start_ticks if st else None


def alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether ``pid`` runs (zombies count as gone) and, if given, started at ``start_ticks``."""
    st = proc_stat(pid)
    if st is None or st.state in ("Z", "X", "x"):
        return False
    return start_ticks is None or st.start_ticks == start_ticks


def _all_stats() -> list[ProcStat]:
    stats = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None:
                stats.append(st)
    return stats


def child_with_env(name: str, value: str) -> int | None:
    """The pid of a child of this process whose environment has ``name=value``, if any.

    For children started by a library that does not tell their pid (ansible-runner): give the
    child a unique marker variable, then find it here.
    """
    marker = f"{name}={value}".encode()
    me = os.getpid()
    for st in _all_stats():
        if st.ppid != me or st.state in ("Z", "X", "x"):
            continue
        try:
            with open(f"/proc/{st.pid}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    return st.pid
        except OSError:
            continue
    return None


def tree(pid: int) -> set[int]:
    """``pid``, its descendants, and every process in its session or process group.

    Descendants are found through their parent pid, which catches children that started a session
    of their own (Ansible's workers and ssh do); session and group membership catches processes
    whose parent already died.
    """
    stats = [s for s in _all_stats() if s.state not in ("Z", "X", "x")]
    children: dict[int, list[int]] = {}
    for s in stats:
        children.setdefault(s.ppid, []).append(s.pid)
    found = {s.pid for s in stats if pid in (s.session, s.pgrp)}
    todo = [pid, *found]
    while todo:
        cur = todo.pop()
        for child in children.get(cur, ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    if alive(pid):
        found.add(pid)
    found.discard(os.getpid())
    return found


def _signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def _wait_gone(pids: set[int], grace: float, reap: Callable[[], object] | None = None) -> set[int]:
    deadline = time.monotonic() + grace
    left = set(pids)
    while True:
        if reap is not None:
            reap()
        left = {p for p in left if alive(p)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def kill_tree(
    pid: int,
    grace: float = 10.0,
    start_ticks: int | None = None,
    first: signal.Signals = signal.SIGTERM,
) -> bool:
    """End ``pid`` and everything it started: ``first`` signal, then SIGKILL after ``grace`` s.

    With ``start_ticks``, nothing is signalled unless ``pid`` is still the process recorded then
    (the pid may have been reused). Returns True when no process of the tree is left.
    """
    if start_ticks is not None and not alive(pid, start_ticks):
        return True
    pids = tree(pid)
    if not pids:
        return True
    _signal_all(pids, first)
    left = _wait_gone(pids, grace)
    # A process may have forked while we waited: take the tree again before the hard kill.
    left |= tree(pid)
    _signal_all(left, signal.SIGKILL)
    return not _wait_gone(left, 5.0)


def _pump(stream: IO[str], lines: queue.Queue[object]) -> None:
    try:
        for line in stream:
            lines.put(line.rstrip("\n"))
    except (OSError, ValueError):  # closed under us
        pass
    finally:
        lines.put(_EOF)
        with contextlib.suppress(OSError):
            stream.close()


@dataclass
class _Child:
    proc: subprocess.Popen[str]
    lines: queue.Queue[object]
    on_line: Callable[[str], None]
    eof: bool = False
    exited_at: float | None = None
    known: dict[int, int] = field(default_factory=dict)

    def drain(self, wait: float) -> None:
        """Hand queued output lines to the callback, waiting up to ``wait`` s for the first."""
        if self.eof:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
            return
        try:
            item = self.lines.get(timeout=wait) if wait > 0 else self.lines.get_nowait()
            while item is not _EOF:
                self.on_line(str(item))
                item = self.lines.get_nowait()
            self.eof = True
        except queue.Empty:
            return

    def finished(self) -> bool:
        """The child exited and its output ended, or a process it left behind holds the pipe
        open for more than ``_EOF_WAIT`` s after it exited (then the rest is not waited for)."""
        if self.proc.poll() is None:
            return False
        if self.exited_at is None:
            self.exited_at = time.monotonic()
        return self.eof or time.monotonic() - self.exited_at > _EOF_WAIT

    def remember_tree(self) -> None:
        """Note the current tree (with start times) so that descendants that start their own
        session can still be found after their parent died."""
        for pid in tree(self.proc.pid):
            ticks = start_ticks(pid)
            if ticks is not None:
                self.known.setdefault(pid, ticks)

    def group_signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def wait_exit(self, grace: float) -> bool:
        deadline = time.monotonic() + grace
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.remember_tree()
            self.drain(min(_POLL, max(0.0, deadline - time.monotonic())))
        return self.proc.poll() is not None

    def stop(self, grace: float, first: signal.Signals) -> None:
        """Escalate ``first`` -> SIGTERM -> SIGKILL over the group, ``grace`` s apart, then end
        whatever is left of the tree (including descendants in sessions of their own)."""
        self.remember_tree()
        for sig in dict.fromkeys((first, signal.SIGTERM)):
            self.group_signal(sig)
            if self.wait_exit(grace):
                break
        else:
            self.group_signal(signal.SIGKILL)
            self.proc.wait()
        left = [p for p, ticks in self.known.items() if alive(p, ticks)]
        _signal_all(left, signal.SIGTERM)
        left = list(_wait_gone(set(left), min(grace, 5.0)))
        _signal_all(left, signal.SIGKILL)
        kill_tree(self.proc.pid, grace=min(grace, 5.0))
        deadline = time.monotonic() + _EOF_WAIT
        while not self.eof and time.monotonic() < deadline:
            self.drain(_POLL)


def minimal_env(extra: Mapping[str, str] | None = None, prefixes: Iterable[str] = ()
                ) -> dict[str, str]:
    """A child's environment: the whitelisted variables of this process (``BASE_ENV``, and those
    starting with one of ``prefixes``, a tool's own settings such as ``ANSIBLE_``), then
    ``extra``. Never the whole environment of the process."""
    starts = tuple(prefixes)
    env = {k: v for k, v in os.environ.items()
           if k in BASE_ENV or (starts and k.startswith(starts))}
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str],
    *,
    hooks: Hooks,
    on_line: Callable[[str], None],
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    grace: float = 20.0,
    first_signal: signal.Signals = signal.SIGINT,
    what: str = "",
    stdin: str | None = None,
) -> int:
    """Run ``argv`` in its own session and return its exit code.

    ``env`` is the child's whole environment; by default the whitelisted part of this
    process's (``minimal_env``), never all of it.

    ``stdin``, when given, is written to the child's standard input, which is then closed (a
    way to hand it data that ``ps`` must not show); else its standard input is empty.

    stdout and stderr are merged and handed line by line to ``on_line`` on the caller's thread.
    ``hooks.cancelled()`` is polled about every 0.2 s; on cancel or once ``timeout`` s have passed
    the process group gets ``first_signal``, then SIGTERM and SIGKILL ``grace`` s apart, and
    ``Cancelled`` / ``TimedOut`` is raised (``what`` names the operation in their message).
    """
    if not argv or isinstance(argv, str):
        raise TypeError("argv must be a non-empty argument list")
    what = what or argv[0]
    try:
        proc = subprocess.Popen(  # noqa: S603 - an argument list, never a shell
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else minimal_env(),
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except FileNotFoundError as exc:
        raise NotFound(
            f"{what}: the program {argv[0]!r} was not found; install it or fix its path"
        ) from exc
    except OSError as exc:
        raise AdapterError(f"{what}: could not start {argv[0]!r}: {exc.strerror}") from exc
    assert proc.stdout is not None
    if proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError):  # it died first: its exit code tells
            proc.stdin.write(stdin or "")
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    child = _Child(proc, queue.Queue(), on_line)
    threading.Thread(target=_pump, args=(proc.stdout, child.lines), daemon=True).start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        hooks.spawned(proc.pid)
        while not child.finished():
            child.drain(_POLL)
            if child.proc.poll() is not None:
                continue
            if hooks.cancelled():
                child.stop(grace, first_signal)
                raise Cancelled(f"{what} was cancelled (exit code {proc.returncode})")
            if deadline is not None and time.monotonic() > deadline:
                child.stop(grace, first_signal)
                raise TimedOut(f"{what} did not finish within {timeout:g} s and was stopped")
    except BaseException:
        # A hook or callback failed (or we are being stopped): never leave the child behind.
        if proc.poll() is None:
            child.remember_tree()
            child.group_signal(signal.SIGKILL)
            proc.wait()
        _signal_all([p for p, t in child.known.items() if alive(p, t)], signal.SIGKILL)
        raise
    finally:
        if child.eof:  # else a leftover process holds the pipe; the reader thread closes it
            proc.stdout.close()
    return proc.wait()

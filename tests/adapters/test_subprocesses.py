"""Running, cancelling and finding child processes through /proc, with real processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters import subprocesses
from adapters.errors import Cancelled, NotFound, TimedOut
from adapters.progress import Hooks
from tests.support import PROMPT, wait_until

PY = sys.executable


def test_run_streams_merged_output_and_returns_the_exit_code() -> None:
    lines: list[str] = []
    sessions: list[tuple[int, int]] = []

    def spawned(pid: int) -> None:
        stat = subprocesses.proc_stat(pid)
        assert stat is not None
        sessions.append((pid, stat.session))

    code = "import sys; print('out'); print('err', file=sys.stderr, flush=True); sys.exit(3)"
    rc = subprocesses.run([PY, "-c", code], hooks=Hooks(spawned=spawned), on_line=lines.append)
    assert rc == 3
    assert sorted(lines) == ["err", "out"]
    [(pid, session)] = sessions
    assert session == pid, "the child must lead its own session"


def test_shell_strings_are_rejected() -> None:
    with pytest.raises(TypeError):
        subprocesses.run("echo hi", hooks=Hooks(), on_line=print)


def test_missing_program_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as err:
        subprocesses.run([str(tmp_path / "nope")], hooks=Hooks(), on_line=print, what="thing")
    assert "thing" in str(err.value)


# The handler writes with os.write and leaves with os._exit: SIGINT can land
# while the main code is still inside print("ready") (the parent acts as soon
# as it reads the line), and a print inside the handler would then be a
# reentrant call into the same buffered stdout.
GRACEFUL = """
import os, signal, time
def stop(*_):
    os.write(1, b"cleaned up\\n")
    os._exit(0)
signal.signal(signal.SIGINT, stop)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_cancel_sends_sigint_first_and_keeps_the_last_output() -> None:
    lines: list[str] = []
    pids: list[int] = []
    hooks = Hooks(cancelled=lambda: "ready" in lines, spawned=pids.append)
    with pytest.raises(Cancelled) as err:
        subprocesses.run([PY, "-c", GRACEFUL], hooks=hooks, on_line=lines.append, grace=10)
    assert lines == ["ready", "cleaned up"]
    assert "exit code 0" in str(err.value)
    assert not subprocesses.alive(pids[0])


STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                         start_new_session=True)
print(child.pid, flush=True)
time.sleep(300)
"""


def test_cancel_escalates_and_ends_children_in_other_sessions() -> None:
    lines: list[str] = []
    pids: list[int] = []
    hooks = Hooks(cancelled=lambda: bool(lines), spawned=pids.append)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        subprocesses.run([PY, "-c", STUBBORN], hooks=hooks, on_line=lines.append, grace=0.5)
    assert time.monotonic() - started < PROMPT  # not the 300 s of the sleep
    grandchild = int(lines[0])
    wait_until(lambda: not subprocesses.alive(grandchild), what="the grandchild to end")
    assert not subprocesses.alive(pids[0])


def test_timeout() -> None:
    pids: list[int] = []
    with pytest.raises(TimedOut) as err:
        subprocesses.run(["sleep", "30"], hooks=Hooks(spawned=pids.append), on_line=print,
                         timeout=0.5, grace=1, what="sleeping")
    assert "sleeping" in str(err.value) and "0.5" in str(err.value)
    assert not subprocesses.alive(pids[0])


def test_alive_and_start_ticks_guard_against_pid_reuse() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        ticks = subprocesses.start_ticks(proc.pid)
        assert ticks is not None
        assert subprocesses.alive(proc.pid)
        assert subprocesses.alive(proc.pid, ticks)
        assert not subprocesses.alive(proc.pid, ticks + 1)
        # A stale record (other start time) never gets its "process" killed.
        assert subprocesses.kill_tree(proc.pid, grace=1, start_ticks=ticks + 1)
        assert proc.poll() is None
    finally:
        proc.kill()
    wait_until(lambda: not subprocesses.alive(proc.pid), what="a zombie to count as gone")
    proc.wait()
    assert subprocesses.start_ticks(proc.pid) is None


def test_kill_tree_ends_descendants_in_their_own_sessions(tmp_path: Path) -> None:
    # A command name with spaces and parentheses must not confuse the /proc/<pid>/stat parser.
    odd = tmp_path / "my ) (sleep"
    shutil.copy("/bin/sleep", odd)
    script = (
        "import subprocess, sys, time\n"
        f"c = subprocess.Popen([{str(odd)!r}, '300'], start_new_session=True)\n"
        "print(c.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    parent = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    stat = subprocesses.proc_stat(child)
    assert stat is not None and stat.ppid == parent.pid and stat.session == child
    assert subprocesses.tree(parent.pid) == {parent.pid, child}
    assert subprocesses.kill_tree(parent.pid, grace=2, start_ticks=subprocesses.start_ticks(parent.pid))
    parent.wait()
    parent.stdout.close()
    assert not subprocesses.alive(child)
    assert subprocesses.tree(parent.pid) == set()


def test_tree_never_includes_the_caller() -> None:
    assert os.getpid() not in subprocesses.tree(os.getpid())


def test_a_failing_callback_never_leaves_the_child_running() -> None:
    pids: list[int] = []

    def on_line(line: str) -> None:
        raise RuntimeError("the event stream is down")

    with pytest.raises(RuntimeError):
        subprocesses.run([PY, "-c", "import time; print('x', flush=True); time.sleep(300)"],
                         hooks=Hooks(spawned=pids.append), on_line=on_line)
    assert not subprocesses.alive(pids[0])

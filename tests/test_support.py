"""The tests' own process hygiene: what a test run starts does not outlive it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support import wait_until

PARENT = """
import subprocess, sys
from tests.support import die_with_parent
child = subprocess.Popen(["sleep", "600"], start_new_session=True, preexec_fn=die_with_parent)
print(child.pid, flush=True)
sys.stdin.read()
"""


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # ended; only its reaping (by init) is left


def test_a_process_started_to_die_with_its_parent_ends_when_the_parent_is_killed() -> None:
    """As a drbot worker the harness started does when pytest is SIGKILLed for its time."""
    root = Path(__file__).resolve().parents[1]
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=root,
                              env={**os.environ, "PYTHONPATH": str(root)})
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert not gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_until(lambda: gone(child), 30, "the child to end with its parent")
    finally:
        if not gone(child):
            os.kill(child, signal.SIGKILL)

"""`drbot console --watch`: the all-in-one console also runs the backup watch's scheduler."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from lab import Lab
from tests.support import children, wait_until

ROOT = Path(__file__).parents[2]


def lab_env(lab: Lab, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRBOT_") and k != "REDIS_URL"}
    env.update(lab.env)
    env.update({"DRBOT_POLICY": str(lab.policy_path), "DRBOT_LOG_LEVEL": "ERROR",
                "DRBOT_LOG_JSON": "false", "PYTHONPATH": str(ROOT), **extra})
    return env


def test_all_in_one_console_with_watch_alerts_on_a_stale_backup(watch_lab: Lab) -> None:
    before = set(children(os.getpid()))
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "bot.cli", "console", "--as", "alice", "--watch"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=lab_env(watch_lab), cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        # Nobody types anything: the scheduler's first check finds the stale volume on its own.
        alert = wait_until(lambda: next((line for line in list(lines)
                                         if line.startswith("[alert #lab-alerts]")
                                         and "apps/archive" in line), None),
                           120, "the stale-backup alert in the console")
        assert "backup missed" in alert and "3d 0h ago" in alert
        wait_until(lambda: "/dr backup-now longhorn apps/archive" in "".join(lines), 10,
                   "the alert's command line")
    finally:
        proc.stdin.close()
        proc.wait(60)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert set(children(os.getpid())) == before  # redis, worker and scheduler are gone


def test_watch_with_an_outside_redis_says_to_run_the_scheduler(watch_lab: Lab) -> None:
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bot.cli", "console", "--watch"], input="", text=True,
        capture_output=True, timeout=60, cwd=ROOT,
        env=lab_env(watch_lab, REDIS_URL="redis://127.0.0.1:1/0"))
    assert done.returncode == 2
    assert "run `drbot scheduler` next to the worker" in done.stderr
    assert "Traceback" not in done.stderr

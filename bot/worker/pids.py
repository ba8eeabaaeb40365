"""Ending the subprocesses a job started, on the worker's host.

ansible-runner and Terraform run in their own sessions, beyond rq's process-group kill, so the
runner records every child (bot/records/signals.py owns that record) and ends them from here.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Collection

import redis

from adapters.subprocesses import alive, kill_tree
from bot.records.signals import HOST, forget_subprocess, subprocess_entries


def signal_all(client: redis.Redis, job_id: str, sig: signal.Signals,
               mine: Collection[int]) -> None:
    """Signal the trees of ``mine`` (the pids this attempt started) that are still recorded."""
    for pid, entry in subprocess_entries(client, job_id):
        if pid in mine and entry["host"] == HOST and alive(pid, entry.get("start")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)


def end_all(client: redis.Redis, job_id: str, grace: float, mine: Collection[int]) -> None:
    """End the recorded trees of ``mine`` (the pids this attempt started), then forget them."""
    for pid, entry in subprocess_entries(client, job_id):
        if pid in mine and entry["host"] == HOST:
            if alive(pid, entry.get("start")):
                kill_tree(pid, grace)
            forget_subprocess(client, job_id, pid)

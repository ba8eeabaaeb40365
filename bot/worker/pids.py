"""Subprocesses a job started, recorded so they can be ended and a retry refused while one lives.

ansible-runner and Terraform run in their own sessions, beyond rq's process-group kill, so the
runner records every child's pid (with its host and start time, which guards against pid reuse).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket

import redis

from adapters.subprocesses import alive, kill_tree, start_ticks

KEY = "drbot:pids:"
HOST = socket.gethostname()


def record(client: redis.Redis, job_id: str, pid: int) -> None:
    entry = {"host": HOST, "start": start_ticks(pid)}
    client.hset(KEY + job_id, str(pid), json.dumps(entry))
    client.expire(KEY + job_id, 30 * 86400)


def _entries(client: redis.Redis, job_id: str) -> list[tuple[int, dict[str, object]]]:
    return [(int(pid), json.loads(raw)) for pid, raw in client.hgetall(KEY + job_id).items()]


def living(client: redis.Redis, job_id: str) -> list[str]:
    """Recorded children still alive: on this host by /proc; on another host we cannot tell, so
    they count as alive until the runner there has cleaned up (it removes them when it ends)."""
    found = []
    for pid, entry in _entries(client, job_id):
        if entry["host"] != HOST:
            found.append(f"pid {pid} on {entry['host']} (cannot be checked from here)")
        elif alive(pid, entry.get("start")):  # type: ignore[arg-type]
            found.append(f"pid {pid} on {HOST}")
    return found


def signal_all(client: redis.Redis, job_id: str, sig: signal.Signals) -> None:
    for pid, entry in _entries(client, job_id):
        if entry["host"] == HOST and alive(pid, entry.get("start")):  # type: ignore[arg-type]
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)


def end_all(client: redis.Redis, job_id: str, grace: float) -> None:
    """End every recorded tree on this host, then forget the ones that are gone."""
    for pid, entry in _entries(client, job_id):
        if entry["host"] == HOST:
            if alive(pid, entry.get("start")):  # type: ignore[arg-type]
                kill_tree(pid, grace)
            client.hdel(KEY + job_id, str(pid))

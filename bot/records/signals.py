"""The short-lived keys by which the chat side and the worker side speak about a running job.

One owner for each of them, so that neither side writes another's key by hand:
- a cancel request (who asked, and when: the reaper's backstop counts from then);
- the job's proof of life, renewed by its heartbeat and removed with its outcome (a job without it
  is lost);
- the rq execution running the job, for the reaper's last-resort stop;
- the subprocesses a job started (ansible-runner and Terraform run in their own sessions, beyond
  rq's process-group kill), with their host and start time (which guards against pid reuse), so
  they can be ended and a retry or unlock refused while one lives.
They hold no authority: a forged cancel can only stop work (which a Redis writer can do anyway by
deleting records), and proof of life only delays the "lost" verdict.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import redis

from adapters.subprocesses import alive, start_ticks

CANCEL = "drbot:cancel:"
ALIVE = "drbot:alive:"
EXECUTION = "drbot:rqjob:"
PIDS = "drbot:pids:"
CANCEL_TTL = 86400
PIDS_TTL = 30 * 86400
HOST = socket.gethostname()


def request_cancel(client: redis.Redis, job_id: str, person: str) -> None:
    with client.pipeline() as pipe:
        pipe.set(CANCEL + job_id, person, ex=CANCEL_TTL)
        pipe.set(CANCEL + job_id + ":at", f"{time.time():.3f}", ex=CANCEL_TTL)
        pipe.execute()


def cancel_requested_by(client: redis.Redis, job_id: str) -> str | None:
    who = client.get(CANCEL + job_id)
    return who.decode(errors="replace") if who else None


def cancel_requested_at(client: redis.Redis, job_id: str) -> float | None:
    """When the cancel was asked; None if never (or if the entry is not a number)."""
    raw = client.get(CANCEL + job_id + ":at")
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def clear_cancel(client: redis.Redis, job_id: str) -> None:
    client.delete(CANCEL + job_id, CANCEL + job_id + ":at")


def prove_alive(pipe: Any, job_id: str, ttl_seconds: float) -> None:
    """In the caller's pipeline or client: the job is alive for ttl_seconds more."""
    pipe.set(ALIVE + job_id, "1", px=int(ttl_seconds * 1000))


def forget_alive(pipe: Any, job_id: str) -> None:
    pipe.delete(ALIVE + job_id)


def is_alive(client: redis.Redis, job_id: str) -> bool:
    return bool(client.exists(ALIVE + job_id))


def record_execution(pipe: Any, job_id: str, rq_id: str, ttl_seconds: int) -> None:
    pipe.set(EXECUTION + job_id, rq_id, ex=ttl_seconds)


def execution_of(client: redis.Redis, job_id: str) -> str | None:
    raw = client.get(EXECUTION + job_id)
    return raw.decode(errors="replace") if raw else None


def record_subprocess(client: redis.Redis, job_id: str, pid: int) -> None:
    entry = {"host": HOST, "start": start_ticks(pid)}
    client.hset(PIDS + job_id, str(pid), json.dumps(entry))
    client.expire(PIDS + job_id, PIDS_TTL)


def subprocess_entries(client: redis.Redis, job_id: str) -> list[tuple[int, dict[str, Any]]]:
    """(pid, {"host", "start"}) of every subprocess recorded for the job."""
    return [(int(pid), json.loads(raw)) for pid, raw in client.hgetall(PIDS + job_id).items()]


def forget_subprocess(client: redis.Redis, job_id: str, pid: int) -> None:
    client.hdel(PIDS + job_id, str(pid))


def living_subprocesses(client: redis.Redis, job_id: str) -> list[str]:
    """Recorded children still alive: on this host by /proc; on another host we cannot tell, so
    they count as alive until the runner there has cleaned up (it removes them when it ends)."""
    found = []
    for pid, entry in subprocess_entries(client, job_id):
        if entry["host"] != HOST:
            found.append(f"pid {pid} on {entry['host']} (cannot be checked from here)")
        elif alive(pid, entry.get("start")):
            found.append(f"pid {pid} on {HOST}")
    return found

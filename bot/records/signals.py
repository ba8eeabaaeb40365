"""The short-lived keys by which the chat side and the worker side speak about a running job.

One owner for each of them, so that neither side writes another's key by hand:
- a cancel request (who asked, and when: the reaper's backstop counts from then);
- the job's proof of life, renewed by its heartbeat and removed with its outcome (a job without it
  is lost);
- the rq execution running the job, for the reaper's last-resort stop.
They hold no authority: a forged cancel can only stop work (which a Redis writer can do anyway by
deleting records), and proof of life only delays the "lost" verdict.
"""

from __future__ import annotations

import time
from typing import Any

import redis

CANCEL = "drbot:cancel:"
ALIVE = "drbot:alive:"
EXECUTION = "drbot:rqjob:"
CANCEL_TTL = 86400


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

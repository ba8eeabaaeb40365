"""Handing jobs to rq. Only one function is ever enqueued: drbot's own job runner."""

from __future__ import annotations

import redis
from redis.client import Pipeline
from rq import Queue
from rq.serializers import JSONSerializer

from bot.records.jobs import Job

RUNNER = "bot.worker.runner.run_job"
GRACE = 120  # rq's own timeout sits this far behind the runner's, as a backstop


def queue(connection: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=connection, serializer=JSONSerializer)


def enqueue(q: Queue, pipe: Pipeline, job: Job, phase: str) -> None:
    """Queue the runner for ``job`` inside the caller's transaction (same MULTI/EXEC)."""
    q.enqueue_call(
        RUNNER, args=[job.id], timeout=job.timeout + GRACE, result_ttl=86400,
        failure_ttl=7 * 86400, job_id=f"drbot-{job.id}-{job.attempt}-{phase}",
        description=f"/dr {job.command} ({job.id})", pipeline=pipe)

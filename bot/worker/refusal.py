"""Which rq jobs the worker refuses before running or importing anything of them, and the job
class it reads them with (the rationale is in bot/worker/worker.py's docstring). Kept apart from
the worker so that this gate is small enough to mutate and test on its own."""

from __future__ import annotations

import logging
from typing import Any

import redis
from rq import Queue
from rq.job import Job as RqJob
from rq.serializers import JSONSerializer

from bot.records.jobs import JOB_ID
from bot.records.queue import GRACE, RUNNER

log = logging.getLogger("drbot.worker")
MAX_TIMEOUT = 7 * 86400 + GRACE


class DrbotJob(RqJob):
    """rq's job without any way to reach outside the runner: whatever Redis says."""

    def send_webhooks(self, status: Any, *, exc_string: str | None = None) -> None:
        if self.webhooks:
            log.error("rq job %s carries webhooks; none is sent", self.id)

    @property
    def success_callback(self) -> None:  # type: ignore[override]
        return None

    @property
    def failure_callback(self) -> None:  # type: ignore[override]
        return None

    @property
    def stopped_callback(self) -> None:  # type: ignore[override]
        return None

    @property
    def should_retry(self) -> bool:  # type: ignore[override]
        return False


def worker_queue(client: redis.Redis, name: str) -> Queue:
    """The queue as the worker sees it: its jobs are DrbotJobs, maintenance included."""
    return Queue(name, connection=client, serializer=JSONSerializer, job_class=DrbotJob)


def acceptable(job: RqJob) -> str | None:
    """Why this rq job is refused, or None if it is shaped like one of drbot's own."""
    try:
        func, args, kwargs = job.func_name, job.args, job.kwargs
    except Exception as exc:  # noqa: BLE001  (an undecodable job is refused, not crashed on)
        return f"undecodable job ({type(exc).__name__})"
    if func != RUNNER:
        return f"function {func!r} is not drbot's job runner"
    if kwargs or not isinstance(args, list | tuple) or len(args) != 1 \
            or not isinstance(args[0], str) or not JOB_ID.match(args[0]):
        return "arguments are not a single drbot job id"
    callbacks = [job._success_callback_name, job._failure_callback_name,
                 job._stopped_callback_name]
    if any(callbacks):
        return f"callbacks {[c for c in callbacks if c]} are not drbot's"
    if getattr(job, "webhooks", None):
        return "webhooks would send the job's result elsewhere"
    if job.retries_left or job.retry_intervals or getattr(job, "repeats_left", None):
        return "drbot's jobs are never retried or repeated by rq"
    if job._dependency_ids:
        return "drbot's jobs depend on no other rq job"
    timeout = job.timeout
    if not isinstance(timeout, int) or not 0 < timeout <= MAX_TIMEOUT:
        return f"timeout {timeout!r} is not one drbot sets"
    return None

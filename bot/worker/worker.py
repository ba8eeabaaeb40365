"""`drbot worker`: an rq worker that runs drbot's job runner and nothing else.

rq stores the function name of each job in Redis; anyone able to write there could otherwise make
the worker import and call any function with its infrastructure credentials. This worker refuses a
job naming any other function before importing it, and audits the attempt.
"""

from __future__ import annotations

import logging
import re

from rq import Queue, Worker
from rq.job import Job as RqJob
from rq.serializers import JSONSerializer

from bot.records.audit import Audit
from bot.records.queue import RUNNER
from bot.worker.shutdown import PromptStop

log = logging.getLogger("drbot.worker")
JOB_ID = re.compile(r"^[0-9a-f]{8}$")


def acceptable(job: RqJob) -> str | None:
    """Why this rq job is refused, or None if it is one of drbot's own."""
    try:
        func, args, kwargs = job.func_name, job.args, job.kwargs
    except Exception as exc:  # noqa: BLE001  (an undecodable job is refused, not crashed on)
        return f"undecodable job ({type(exc).__name__})"
    if func != RUNNER:
        return f"function {func!r} is not drbot's job runner"
    if kwargs or len(args) != 1 or not isinstance(args[0], str) or not JOB_ID.match(args[0]):
        return "arguments are not a single drbot job id"
    # rq runs callbacks by name too: a job carrying any would run foreign code after ours.
    callbacks = [job._success_callback_name, job._failure_callback_name,
                 job._stopped_callback_name]
    if any(callbacks):
        return f"callbacks {[c for c in callbacks if c]} are not drbot's"
    if getattr(job, "webhooks", None):
        return "webhooks would send the job's result elsewhere"
    return None


class DrbotWorker(PromptStop, Worker):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("serializer", JSONSerializer)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def execute_job(self, job: RqJob, queue: Queue) -> None:
        why = acceptable(job)
        if why is None:
            super().execute_job(job, queue)
            return
        log.error("refused rq job %s: %s", job.id, why)
        Audit(self.connection).record("worker", "refused-foreign-job", job=job.id, detail=why)
        self.handle_job_failure(job, queue=queue, exc_string=f"refused by drbot: {why}")

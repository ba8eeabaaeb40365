"""`drbot worker`: an rq worker that runs drbot's job runner and nothing else.

rq stores everything about a job in Redis: the function name, its arguments, callbacks, webhooks,
retry counts, timeouts. Anyone able to write there could otherwise make the worker import and
call any function with its infrastructure credentials, or make it send requests anywhere. So:

- a job is checked when it is taken from the queue, before anything of it is run or imported;
  a refused job is removed from Redis and audited, never handed to rq's failure handling (which
  would send its webhooks and retry it as often as its retry count says);
- rq's job class is replaced by one that has no way out: no webhooks, no callbacks, no retries,
  on any path (success, failure, stop, a dead horse found by maintenance);
- a job that cannot even be decoded (a timeout that is not a number, say) is removed the same
  way, so one bad entry never stops the worker;
- drbot's own runner job is admitted only for a signed record that is actionable now: in a
  state that asks for work, signed within the actionable window, and newer than any version of
  it this worker has seen (so a record written back cannot run twice here); what it has seen is
  kept on its own disk (seen.py), so a restart does not forget it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from rq import Queue, Worker
from rq.exceptions import StopRequested
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job as RqJob
from rq.serializers import JSONSerializer

from bot.errors import CommandError, RecordForged
from bot.records.audit import Audit
from bot.records.jobs import JobStatus, Latest
from bot.runtime import Runtime
from bot.worker import runner
from bot.worker.admission import Admission
from bot.worker.refusal import DrbotJob, acceptable
from bot.worker.seen import SeenVersions, default_dir
from bot.worker.shutdown import PromptStop

log = logging.getLogger("drbot.worker")
ACTIONABLE = frozenset({JobStatus.PLANNING, JobStatus.QUEUED})


class DrbotWorker(PromptStop, Worker):
    def __init__(self, *args: Any, runtime: Runtime | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", JSONSerializer)
        kwargs.setdefault("job_class", DrbotJob)
        super().__init__(*args, **kwargs)
        self.rt = runtime
        folder = None
        if runtime is not None:
            folder = runtime.settings.state_dir or default_dir()
        window = runtime.settings.actionable_seconds if runtime is not None else 900
        self.seen = SeenVersions(folder, 2 * window)

    # -- taking a job -----------------------------------------------------------------------------
    def dequeue_job_and_maintain_ttl(self, timeout: int | None,
                                     max_idle_time: int | None = None) -> tuple[RqJob, Queue] | None:
        while True:
            try:
                result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except (StopRequested, redis.ConnectionError, redis.TimeoutError):
                raise  # an outage, not a bad entry: rq's own handling rides it out
            except Exception as exc:
                # rq names the job it could not decode on the exception; anything else is ours
                job_id, queue = getattr(exc, "job_id", None), getattr(exc, "queue", None)
                if isinstance(exc, UnicodeError) and job_id is None:
                    self.scrub()  # a queue entry that is not even text
                    continue
                if job_id is None or queue is None:
                    raise
                self.discard(str(job_id), queue, f"undecodable rq job ({type(exc).__name__})")
                continue
            if result is None:
                return None
            job, queue = result
            why = acceptable(job)
            outcome = "refused-foreign-job"
            if why is None:
                outcome, why = self.admit(job)
            if why is None:
                return result
            self.discard(job.id, queue, why, outcome, job=job)

    def scrub(self) -> None:
        """Remove queue entries that are not text (rq cannot even name them) from this
        worker's queues and the lists rq moves taken entries to; audit each."""
        for queue in self.queues:
            for key in (queue.key, IntermediateQueue(queue.key, self.connection).key):
                for member in set(self.connection.lrange(key, 0, -1)):
                    try:
                        member.decode()
                    except UnicodeError:
                        self.connection.lrem(key, 0, member)
                        self.rt_audit().record("worker", "refused-foreign-job",
                                               detail=f"queue entry {member[:40]!r} is not text")

    def rt_audit(self) -> Audit:
        return self.rt.audit if self.rt else Audit(self.connection)

    def admit(self, job: RqJob) -> tuple[str, str | None]:
        """(audit outcome, why) for drbot's own runner job: refused unless its signed record
        asks for work now and is newer than any version of it this worker has seen."""
        runner.ADMITTED = None
        if self.rt is None:
            return "", None
        job_id = str(job.args[0])
        latest = Latest()
        try:
            record = self.rt.store.get(job_id, latest)
        except RecordForged as exc:
            return "refused-forged", str(exc)
        except CommandError as exc:
            return "refused-no-record", str(exc)
        now, window = time.time(), self.rt.settings.actionable_seconds
        if record.status not in ACTIONABLE:
            return "refused-replay", f"job {job_id} is {record.status}: nothing to start"
        if now - record.signed > window:
            return "refused-stale", (f"job {job_id} was {record.status} {now - record.signed:.0f}s "
                                     f"ago, beyond the {window}s window: a stale or replayed "
                                     "record")
        newest = self.seen.newest(job_id)
        if record.version <= newest:
            return "refused-replay", (f"job {job_id} version {record.version} is not newer than "
                                      f"version {newest}, which this worker already saw")
        # Held in memory here (this worker admits that version no more); written to disk right
        # after the fork, and the horse refuses the job if it was not (bot/worker/admission.py).
        self.seen.hold(job_id, record.version, now)
        runner.ADMITTED = Admission(record, self.seen, now, latest)  # the horse inherits it
        return "", None

    def fork_work_horse(self, job: RqJob, queue: Queue) -> None:
        """The admitted version's seen-mark is written by this worker while its horse starts
        (bot/worker/admission.py)."""
        admission = runner.ADMITTED
        if admission is not None:
            admission.before_fork()
        super().fork_work_horse(job, queue)  # the horse never comes back from it
        if admission is not None:
            admission.in_worker()

    def main_work_horse(self, job: RqJob, queue: Queue) -> None:
        if runner.ADMITTED is not None:
            runner.ADMITTED.in_horse()
        super().main_work_horse(job, queue)

    def perform_job(self, job: RqJob, queue: Queue, *args: Any) -> bool:
        """In the work horse: rq stores the result while the job's last version is written down
        (Admission.ended); the horse ends once both are done."""
        try:
            return super().perform_job(job, queue, *args)
        finally:
            if runner.ADMITTED is not None:
                runner.ADMITTED.settled()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """rq's worker heartbeat (three commands) in one round trip when it has no pipeline:
        it runs between taking a job and starting it."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipe)
            pipe.execute()

    def saw(self, job_id: str) -> None:
        """After a run: remember the newest version the run wrote, so no older one starts again.
        The runner never leaves a record asking for work, so a record that asks for work now
        was written after the run (a retry, an approval) and is left to be admitted."""
        if self.rt is None:
            return
        admitted = runner.ADMITTED
        if admitted and admitted.job_id == job_id and \
                self.seen.newest_on_disk(job_id) > admitted.version:
            return  # the horse wrote down the version of its last write (Admission.ended)
        try:
            record = self.rt.store.get(job_id)
        except (RecordForged, CommandError, redis.RedisError):
            return
        version = record.version - 1 if record.status in ACTIONABLE else record.version
        try:
            self.seen.note(job_id, version, time.time())
        except OSError as exc:
            log.error("cannot record the versions of job %s this worker saw (%s)", job_id,
                      exc.strerror)

    def discard(self, job_id: str, queue: Queue, why: str,
                outcome: str = "refused-foreign-job", job: RqJob | None = None) -> None:
        """Remove a refused job from Redis without rq's failure handling: nothing is sent,
        nothing is retried, and the next job is served."""
        log.error("refused rq job %s: %s", job_id, why)
        drbot_job = str(job.args[0]) if job is not None and outcome != "refused-foreign-job" else ""
        self.rt_audit().record("worker", outcome, job=drbot_job or job_id, detail=f"rq job {job_id}: {why}")
        key = job.key if job is not None else RqJob.key_for(job_id)
        with self.connection.pipeline() as pipe:
            pipe.lrem(IntermediateQueue(queue.key, self.connection).key, 0, job_id)
            pipe.lrem(queue.key, 0, job_id)
            pipe.delete(key, RqJob.dependents_key_for(job_id))
            pipe.execute()

    def execute_job(self, job: RqJob, queue: Queue) -> None:
        why = acceptable(job)
        if why is None:
            try:
                super().execute_job(job, queue)
            finally:
                self.saw(str(job.args[0]))
            return
        self.discard(job.id, queue, why, job=job)

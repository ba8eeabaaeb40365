"""The worker's one job function: plan a job, or verify and run its runbook step by step.

rq calls ``run_job(job_id)`` in a forked work horse. Nothing in Redis is trusted that is not signed
with the key from this process's configuration; the policy and approvals are checked again here.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

from redis.client import Pipeline
from rq import get_current_job

from adapters.errors import AdapterError, Cancelled
from adapters.progress import Hooks, Progress
from bot import logs, registry
from bot.chat import relay
from bot.config.settings import Settings
from bot.errors import CommandError, RecordForged
from bot.metrics import JOB_SECONDS, JOBS
from bot.records import files, signals
from bot.records.events import Event, EventType
from bot.records.jobs import RETRYABLE, Job, JobStatus, Latest, Step, StepStatus, busy_text
from bot.records.locks import LockKey
from bot.registry import CommandSpec
from bot.runbook import PlanContext, Runbook, StepContext
from bot.runtime import Runtime
from bot.worker import pids
from bot.worker.admission import Admission
from bot.worker.heartbeat import INTERRUPTED, Heartbeat
from bot.worker.services import Services
from bot.worker.steprecords import StepRecords

log = logging.getLogger("drbot.runner")


_PREPARED: Runtime | None = None
# The record the worker admitted for this work horse; set in the worker before the fork.
ADMITTED: Admission | None = None


def prepare(rt: Runtime) -> None:
    """Called once in the worker before it forks work horses: they inherit the loaded handlers,
    the parsed settings and files, and a connection pool (redis-py resets it after a fork)."""
    global _PREPARED
    registry.load(rt.settings.plugins)
    if talks_to_kubernetes(rt):
        from adapters.kubernetes.client import preload

        preload()
    _PREPARED = rt


def talks_to_kubernetes(rt: Runtime) -> bool:
    """Whether this worker's configuration names a cluster (a kubeconfig, endpoints, or the
    in-cluster account): then its jobs use the Kubernetes client, worth importing before the
    fork. A worker without one (a bare test worker) does not pay for it."""
    target = rt.inventory.kubernetes
    return bool(rt.settings.kubeconfig or target.kubeconfig or target.endpoints
                or os.environ.get("KUBECONFIG") or os.environ.get("KUBERNETES_SERVICE_HOST"))


def run_job(job_id: str) -> str:
    """rq entry point (the only function a drbot worker will run)."""
    runtime = _PREPARED or Runtime.from_settings(Settings(), patient=True)
    with logs.job_context(job_id):
        return Runner(runtime, job_id).run()


def durations(job: Job) -> str:
    parts = [f"{s.name} {s.seconds:.1f}s" for s in job.steps if s.seconds is not None]
    return "steps: " + ", ".join(parts) if parts else ""


def next_step_hint(job: Job) -> str:
    return f"/dr retry {job.id} resumes at the first unfinished step"


def stop_status(reason: str) -> JobStatus:
    """A step stopped by a person is cancelled; by its timeout or a worker shutdown, failed (the
    job did not do what was asked, and /dr retry resumes it either way)."""
    return JobStatus.FAILED if reason.startswith(("timed out", INTERRUPTED)) else JobStatus.CANCELLED


def adopt(job: Job, runbook: Runbook, digest: str) -> None:
    """Record a (new) plan in the job: what approvals bind to and the steps to run."""
    job.digest, job.targets, job.revision = digest, runbook.targets, runbook.revision
    done = {s.name: s for s in job.steps if s.status == StepStatus.DONE}
    intents = {s.name: s.intent for s in job.steps if s.intent}
    job.steps = [done.get(s.name) or Step(s.name, s.target, s.describe, s.destructive,
                                          intent=intents.get(s.name, {}))
                 for s in runbook.steps]


class Superseded(Exception):
    """This worker's attempt is no longer the job's: a retry took the job over (the reaper
    judged this worker lost while it was only late, and someone typed /dr retry). The job's
    locks, subprocesses, proof of life and record now belong to the retry, so this worker
    writes nothing more and lets nothing go: its outcome would overwrite the retry's record,
    and its cleanup would free the retry's locks and end the retry's subprocesses."""


class NotRecorded(Exception):
    """The worker could not write down that it saw this version: the job must not take effect
    (a restarted worker could run a written-back copy of it again)."""


class Runner:
    def __init__(self, rt: Runtime, job_id: str) -> None:
        self.rt = rt
        self.job_id = job_id
        self.services = Services(rt.settings, rt.inventory)
        self.records = StepRecords(rt, self.services)
        self.held: list[LockKey] | None = None  # set while the job runs (its lock keys)
        self.beat: Heartbeat | None = None
        self.attempt: int | None = None  # the attempt this worker runs, once it has read it
        # The subprocesses this attempt started: the only ones it may end (a retry's are
        # recorded under the same job id, and a Redis writer could name any pid there).
        self.spawned: list[int] = []
        self.superseded = False
        self.wrote: int | None = None  # the version of this worker's last write to the job
        self.admission = ADMITTED if ADMITTED is not None and ADMITTED.job_id == job_id else None
        # the record's bytes as this worker last read or wrote them: its writes are one round trip
        self.latest = self.admission.latest if self.admission else Latest()

    def recorded(self) -> None:
        """Before the job's first write: the admitted version's seen-mark is on disk."""
        if self.admission is not None and (why := self.admission.recorded()):
            raise NotRecorded(why)

    def cleanup(self, proof_of_life: bool = False) -> None:
        """Stop the heartbeat, end the job's subprocess trees, free its locks (idempotent).

        The proof of life goes too, unless ``proof_of_life``: `finish` removes it with the
        outcome, since a running job without one is what the reaper declares lost."""
        if self.beat:
            self.beat.stop()
            self.beat = None
        if self.superseded:  # all the job holds is the retry's now
            self.held = None
        if self.held is not None:
            pids.end_all(self.rt.client, self.job_id, self.rt.settings.cancel_grace_seconds,
                         self.spawned)
            self.let_go(self.held, proof_of_life)
            self.held = None

    def let_go(self, held: list[LockKey], proof_of_life: bool) -> None:
        """Free the locks (and the proof of life) in one transaction with the check that this
        attempt still owns the job: a retry admitted a moment after `finish` looked holds the
        same keys under the same job id, and must keep them."""
        def frees(pipe: Pipeline) -> None:
            self.rt.locks.release(self.job_id, held, client=pipe)
            if not proof_of_life:
                signals.forget_alive(pipe, self.job_id)
        if self.attempt is None or not self.rt.store.while_attempt(self.job_id, self.attempt,
                                                                   frees, self.latest):
            self.superseded = True

    def remove_files(self) -> None:
        """A job that cannot be retried needs its files no more, and they may hold credentials
        (a fetched kubeconfig) or be large (fetched etcd snapshots)."""
        iac = self.rt.inventory.iac
        if iac is None:
            return
        path = iac.job_dir(self.job_id)
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove job files at %s (%s); remove them by hand", path, exc)

    # -- helpers --------------------------------------------------------------------------------
    def emit(self, type_: EventType, message: str = "", **fields: str) -> None:
        self.recorded()
        self.rt.events.emit(self.job_id, Event(type_, message=message, **fields))

    def post_file(self, name: str, data: bytes, caption: str) -> None:
        """Keep the bytes in Redis and name their digest in a signed event: the relay posts
        them in the thread only if they still hash to it (bot/records/files.py)."""
        sha = files.put(self.rt.client, self.job_id, data)
        self.emit(EventType.FILE, caption, target=name, task=sha)

    def update(self, change: Callable[[Job], Any],
               then: Callable[[Pipeline, Job], None] | None = None) -> Job:
        """Every write of this worker to its job, refused once another attempt owns the job."""
        self.recorded()
        written = False

        def mine(job: Job) -> Any:
            nonlocal written
            if self.attempt is not None and job.attempt != self.attempt:
                self.superseded = True
                raise Superseded(f"attempt {self.attempt} was superseded by attempt {job.attempt}")
            result = change(job)
            written = result is not False
            return result
        job = self.rt.store.update(self.job_id, mine, then, self.latest)
        if written:
            self.wrote = job.version
        return job

    def finish(self, status: JobStatus, type_: EventType, message: str, error: str | None = None
               ) -> JobStatus:
        """Record the outcome and tell the thread; whatever the job held is let go first, so
        whoever reads the outcome finds the locks free, the subprocesses gone and, for a job
        that cannot be retried, its files removed; unless a retry owns the job by now."""
        self.update(lambda job: False)  # raises Superseded before anything is let go
        self.cleanup(proof_of_life=True)
        if self.superseded:  # a retry took the job over while this worker was letting go
            raise Superseded(f"attempt {self.attempt} was superseded while it ended")
        if status not in RETRYABLE:
            self.remove_files()

        judged_lost = False

        def change(job: Job) -> None:
            nonlocal judged_lost
            judged_lost = job.status == JobStatus.LOST
            job.status, job.error = status, error
            if status == JobStatus.SUCCEEDED:
                job.summary = message

        audited = self.rt.audit.entry("job", status, job=self.job_id, detail=message)

        def written(pipe: Pipeline, j: Job) -> None:
            """The outcome's event in the outcome's transaction: if the reaper took this job for
            lost meanwhile, its "worker lost" comes before this, and this is the last word. The
            events' expiry and the audit entry ride along (one round trip, not three)."""
            signals.forget_alive(pipe, j.id)
            self.rt.events.emit_in(pipe, j.id, Event(type_, message=message))
            self.rt.events.expire(j.id, pipe)
            self.rt.audit.stage(pipe, audited)
        job = self.update(change, written)
        self.rt.audit.log(audited)
        if judged_lost:  # the relay let go of the thread at the verdict: it has more to say
            relay.reactivate(self.rt.client, self.job_id)
        JOBS.labels(job.command, status).inc()
        started = [s.started for s in job.steps if s.started is not None]
        if started:
            JOB_SECONDS.labels(job.command).observe(time.time() - min(started))
        return status

    def build(self, job: Job, spec: CommandSpec) -> Runbook:
        ctx = PlanContext(dict(job.args), self.rt.inventory, self.services, job.id, self.records)
        return spec.fn(ctx)

    # -- entry ----------------------------------------------------------------------------------
    def run(self) -> str:
        try:
            # the record the worker read and verified to admit it, or read here (no worker)
            job = (self.admission.record if self.admission
                   else self.rt.store.get(self.job_id, self.latest))
        except RecordForged as exc:
            self.rt.audit.record("job", "refused-forged", job=self.job_id, detail=str(exc))
            self.emit(EventType.REFUSED, "refused: this job's record was not written by drbot "
                                 "(bad signature); nothing was run and it was audited")
            return JobStatus.REFUSED
        why = self.not_actionable(job)
        if why:
            self.rt.audit.record("job", "refused-replay", job=self.job_id, detail=why)
            log.error("job %s: %s", job.id, why, extra={"job_id": job.id})
            return JobStatus.REFUSED
        self.attempt = job.attempt
        try:
            status = self.act(job)
            if self.admission is not None and self.wrote is not None:
                self.admission.ended(self.wrote)
            return status
        except Superseded as exc:
            self.cleanup()
            self.rt.audit.record("job", "superseded", job=self.job_id, detail=str(exc))
            log.warning("job %s: %s; this worker's outcome is dropped", self.job_id, exc,
                        extra={"job_id": self.job_id})
            return JobStatus.LOST
        except NotRecorded as exc:
            self.cleanup()
            self.rt.audit.record("worker", "refused-no-state", job=self.job_id, detail=str(exc))
            log.error("job %s: %s", self.job_id, exc, extra={"job_id": self.job_id})
            return JobStatus.REFUSED

    def act(self, job: Job) -> str:
        """Plan or run the admitted record, as its status asks."""
        logs.bind_person(job.requester)
        registry.load(self.rt.settings.plugins)
        spec = registry.spec(job.command)
        try:
            if job.status == JobStatus.PLANNING:
                return self.plan(job, spec)
            if job.status == JobStatus.QUEUED:
                return self.execute(job, spec)
        except (CommandError, AdapterError) as exc:
            if job.status == JobStatus.QUEUED:  # approved or retried: the cause may pass, keep it retryable
                return self.finish(JobStatus.FAILED, EventType.FAILED, f"could not start: {exc}. "
                                   f"Fix the cause, then /dr retry {job.id}.", str(exc))
            return self.finish(JobStatus.REFUSED, EventType.REFUSED, f"refused: {exc}", str(exc))
        log.info("job %s is %s: nothing to do", job.id, job.status, extra={"job_id": job.id})
        return job.status

    def not_actionable(self, job: Job) -> str:
        """Why this record must not be acted on ('' if it may): it is older than the version the
        worker admitted (a newer one is drbot's own later write, like the thread it was given),
        or it is a request for work signed longer ago than the actionable window."""
        if ADMITTED is not None and (ADMITTED.job_id != job.id or job.version < ADMITTED.version):
            return (f"the record went back to version {job.version} after the worker admitted "
                    f"version {ADMITTED.version}")
        age = time.time() - job.signed
        if job.status in (JobStatus.PLANNING, JobStatus.QUEUED) and age > self.rt.settings.actionable_seconds:
            return f"a {job.status} record signed {age:.0f}s ago is past the actionable window"
        return ""

    # -- planning -------------------------------------------------------------------------------
    def plan(self, job: Job, spec: CommandSpec) -> str:
        runbook = self.build(job, spec)
        if runbook.preflight and not job.dry_run:
            runbook.preflight()
        digest = runbook.digest(job.command, job.args)
        rule = self.rt.policy.rule(job.command)
        needed = rule.approvals if rule else 0
        if not job.dry_run and not needed:
            # Runs at once: the plan is written together with the start (one write less).
            adopt(job, runbook, digest)
            if spec.mutating:
                self.emit(EventType.PLAN, runbook.describe())
            return self.execute(job, spec, runbook, fresh=True)

        def change(j: Job) -> None:
            adopt(j, runbook, digest)
            j.approvals_needed = needed
            if j.dry_run:
                j.status = JobStatus.PLANNED
            elif rule:
                j.status, j.deadline = JobStatus.AWAITING_APPROVAL, time.time() + rule.expires_seconds
        job = self.update(change)
        if spec.mutating:
            self.emit(EventType.PLAN, runbook.describe(), status="dry-run" if job.dry_run else "")
        if job.dry_run:
            preflight = self.dry_preflight(runbook)
            return self.finish(JobStatus.PLANNED, EventType.DONE, f"dry run: nothing was changed.{preflight}")
        if job.status == JobStatus.AWAITING_APPROVAL:
            self.emit(EventType.AWAITING_APPROVAL, f"needs {needed} approval(s) from "
                      f"{', '.join(rule.approvers) if rule else '?'}: /dr approve {job.id}")
        return job.status

    @staticmethod
    def dry_preflight(runbook: Runbook) -> str:
        if not runbook.preflight:
            return ""
        try:
            runbook.preflight()
        except (CommandError, AdapterError) as exc:
            return f" Preflight would refuse now: {exc}"
        return " Preflight passes now."

    # -- verification ---------------------------------------------------------------------------
    def verify(self, job: Job, runbook: Runbook) -> str | None:
        """None if the job may run now; else why it must wait for (fresh) approval."""
        policy = self.rt.policy
        spec = registry.COMMANDS.get(job.command)
        if spec is not None and spec.system:
            if job.account != registry.SYSTEM:
                raise CommandError(f"/dr {job.command} is a system command; only drbot's "
                                   "scheduler may request it")
            return None  # signed by drbot's key, requested by the scheduler: no policy entry
        for account in filter(None, (job.account, job.retried_account)):
            if not policy.may_request(policy.caller(account), job.command):
                raise CommandError(f"{account} may no longer run /dr {job.command} "
                                   "(the policy changed)")
        rule = policy.rule(job.command)
        if rule and rule.confirm and job.confirm != rule.confirm:
            raise CommandError("the confirmation phrase does not match the policy")
        if runbook.digest(job.command, job.args) != job.digest:
            return "the plan changed since it was approved"
        now = time.time()
        keeps = bool(rule and rule.retry_keeps_approval)
        valid = {a.person for a in job.approvals
                 if a.digest == job.digest and a.expires > now
                 and a.person not in (job.requester, job.retried_by)
                 and (keeps or a.attempt == job.attempt)
                 and policy.may_approve(a.person, job.command)}
        if len(valid) < (rule.approvals if rule else 0):
            return "approvals are missing or expired" if job.approvals_needed else None
        return None

    def reapprove(self, job: Job, runbook: Runbook, why: str) -> str:
        rule = self.rt.policy.rule(job.command)
        digest = runbook.digest(job.command, job.args)

        def change(j: Job) -> None:
            adopt(j, runbook, digest)
            j.status, j.approvals = JobStatus.AWAITING_APPROVAL, []
            j.deadline = time.time() + (rule.expires_seconds if rule else 1800)
        self.update(change)
        self.rt.audit.record("job", "reapproval", job=job.id, detail=why)
        self.emit(EventType.PLAN, runbook.describe())
        self.emit(EventType.AWAITING_APPROVAL, f"{why}: fresh approval needed: /dr approve {job.id}")
        return JobStatus.AWAITING_APPROVAL

    # -- execution ------------------------------------------------------------------------------
    def execute(self, job: Job, spec: CommandSpec, runbook: Runbook | None = None,
                fresh: bool = False) -> str:
        """Verify and run. ``fresh``: planned just now in this process, not yet written."""
        if runbook is None:
            runbook = self.build(job, spec)
        why = self.verify(job, runbook)
        if why:
            return self.reapprove(job, runbook, why)
        alive = [] if fresh else signals.living_subprocesses(self.rt.client, job.id)
        if alive:
            return self.finish(JobStatus.FAILED, EventType.FAILED, "a subprocess of the previous "
                               f"attempt is still running ({', '.join(alive)}); wait for it to end "
                               f"or end it, then /dr retry {job.id}", "subprocess alive")
        keys = spec.locks(job.args, self.rt.inventory)
        self.recorded()
        busy = self.rt.locks.acquire(job.id, keys, ttl=self.rt.settings.lost_after_seconds)
        if busy:
            return self.finish(JobStatus.FAILED, EventType.FAILED,
                               busy_text(self.rt.store, busy.key, busy.holder), "busy")
        self.held = keys
        beat = self.beat = Heartbeat(self.rt, job, keys, self.on_hard_stop, self.spawned)
        acted_on = job.status
        first = self.first_step(job, runbook, beat)
        try:
            def start(j: Job) -> None:
                if j.status != acted_on:  # cancelled (say) since it was read: it does not start
                    raise Superseded(f"the job became {j.status} before it started")
                if fresh:
                    adopt(j, runbook, job.digest or "")
                j.status, j.error = JobStatus.RUNNING, None
                j.locks = [[k.name, k.mode] for k in keys]
                if first is not None:
                    j.steps[first].status, j.steps[first].error = StepStatus.RUNNING, None
                    j.steps[first].started = time.time()

            def alive(pipe: Pipeline, j: Job) -> None:
                """Proof of life, the rq execution and the first step's start, written with the
                start itself (one round trip before the person sees the step begin)."""
                signals.prove_alive(pipe, j.id, self.rt.settings.lost_after_seconds)
                current = get_current_job()
                if current:
                    signals.record_execution(pipe, j.id, current.id, j.timeout + 3600)
                if first is not None:
                    step = runbook.steps[first]
                    self.rt.events.emit_in(pipe, j.id, Event(
                        EventType.STEP, message=f"{step.name}: started", step=step.name,
                        target=step.target, status=StepStatus.RUNNING))
            job = self.update(start, alive)
            return self.steps(job, runbook, beat, started=first)
        finally:
            self.cleanup()

    @staticmethod
    def first_step(job: Job, runbook: Runbook, beat: Heartbeat) -> int | None:
        """The step that can start with the job's start write: the first unfinished one, unless
        it needs a preflight first (destructive) or the job is being stopped."""
        index = next((i for i, s in enumerate(job.steps) if s.status != StepStatus.DONE), None)
        if index is None or beat.cancel_reason or (
                runbook.steps[index].destructive and runbook.preflight):
            return None
        return index

    def steps(self, job: Job, runbook: Runbook, beat: Heartbeat, started: int | None = None) -> str:
        """Run the unfinished steps; ``started``: the one the start write already marked
        running (and announced)."""
        results = {s.name: s.result for s in job.steps if s.status == StepStatus.DONE}
        for index, step in enumerate(runbook.steps):
            state = job.steps[index]
            if state.status == StepStatus.DONE:
                continue
            if index == started:
                self.beating(beat)
            else:
                if beat.cancel_reason:
                    return self.stopped(job, step.name, beat)
                if step.destructive and runbook.preflight:
                    self.beating(beat)  # a preflight may take long: stay alive and cancellable
                    try:
                        runbook.preflight()
                    except (CommandError, AdapterError) as exc:
                        return self.fail(index, step.name, f"preflight refused before "
                                         f"{step.name}: {exc}")
                self.emit(EventType.STEP, f"{step.name}: started", step=step.name,
                          target=step.target, status=StepStatus.RUNNING)
                self.beating(beat)
                self.mark(index, status=StepStatus.RUNNING, started=time.time(), error=None)
            ctx = StepContext(job.id, step.name, results, self.hooks(step.name, step.target, beat),
                              self.services, self.rt.inventory, dict(state.intent),
                              lambda key, value, at=index: self.record_intent(at, key, value),
                              attempt=job.attempt, records=self.records,
                              post_file=self.post_file)
            try:
                result = step.run(ctx) or {}
            except Cancelled as exc:
                return self.stopped(job, step.name, beat, str(exc))
            except (CommandError, AdapterError) as exc:
                if beat.cancel_reason:
                    return self.stopped(job, step.name, beat, str(exc))
                return self.fail(index, step.name, str(exc))
            except Exception:
                log.exception("step %s of job %s crashed", step.name, job.id,
                              extra={"job_id": job.id})
                return self.fail(index, step.name, f"internal error (see the worker log for job "
                                                   f"{job.id})")
            if beat.cancel_reason and not result:
                return self.stopped(job, step.name, beat)
            results[step.name] = result
            job = self.mark(index, status=StepStatus.DONE, ended=time.time(), result=result)
            self.emit(EventType.STEP, f"{step.name}: done", step=step.name, target=step.target,
                      status=StepStatus.DONE)
        summary = runbook.summary(results) if runbook.summary else "done"
        attempts = f" (in {job.attempt + 1} attempts)" if job.attempt else ""
        return self.finish(JobStatus.SUCCEEDED, EventType.DONE, f"{summary}\n{durations(job)}{attempts}")

    @staticmethod
    def beating(beat: Heartbeat) -> None:
        """Start the heartbeat once, as late as is safe: after the first step's start event
        (starting a thread takes a while, and that event is what the person waits to see), or
        before a preflight, which may take long."""
        if beat.ident is None:
            beat.start()

    def record_intent(self, index: int, key: str, value: Any) -> None:
        """Write what a step is about to act on into the job, before the step acts."""
        def change(job: Job) -> None:
            job.steps[index].intent[key] = value
        self.update(change)

    def mark(self, index: int, **fields: Any) -> Job:
        """Change one step's state; returns the job as written."""
        def change(job: Job) -> None:
            for name, value in fields.items():
                setattr(job.steps[index], name, value)
        return self.update(change)

    def fail(self, index: int, step: str, error: str) -> str:
        job = self.mark(index, status=StepStatus.FAILED, ended=time.time(), error=error)
        self.emit(EventType.STEP_FAILED, f"{step} failed: {error}", step=step, status=StepStatus.FAILED)
        return self.finish(JobStatus.FAILED, EventType.FAILED, f"failed at step '{step}': {error}. "
                           f"Fix the cause, then {next_step_hint(job)}.", error)

    def stopped(self, job: Job, step: str, beat: Heartbeat, detail: str = "") -> str:
        reason = beat.cancel_reason or "cancelled"
        index = next(i for i, s in enumerate(job.steps) if s.name == step)
        job = self.mark(index, status=StepStatus.CANCELLED, ended=time.time(), error=reason)
        done = [s.name for s in job.steps if s.status == StepStatus.DONE]
        left = (f"finished steps: {', '.join(done)}; " if done else "no step had finished; ")
        status = stop_status(reason)
        return self.finish(status, EventType.FAILED if status == JobStatus.FAILED else EventType.CANCELLED,
                           f"{reason} during step '{step}'{': ' + detail if detail else ''}. "
                           f"{left}'{step}' may be partly done. {next_step_hint(job)}.", reason)

    def on_hard_stop(self, job: Job, reason: str) -> None:
        """Called by the heartbeat when a step ignored cancellation past the grace period."""
        current = self.rt.store.get(job.id).current_step
        name = current.name if current else "?"
        status = stop_status(reason)
        self.finish(status, EventType.FAILED if status == JobStatus.FAILED else EventType.CANCELLED,
                    f"{reason} during step '{name}'; the step did not stop in time and was "
                    f"killed; state unknown. {next_step_hint(job)}.", reason)

    def hooks(self, step: str, target: str, beat: Heartbeat) -> Hooks:
        def report(p: Progress) -> None:
            self.emit(EventType.PROGRESS, p.message, step=step, target=p.target or target, task=p.task,
                      host=p.host, status=p.status)

        def spawned(pid: int) -> None:
            self.spawned.append(pid)
            signals.record_subprocess(self.rt.client, self.job_id, pid)
        return Hooks(report=report, cancelled=lambda: bool(beat.cancel_reason), spawned=spawned)

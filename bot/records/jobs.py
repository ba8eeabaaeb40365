"""Job records: what was asked, by whom, the plan and its approvals, and each step's state.

A record is one signed JSON value in Redis. Every change goes through ``JobStore.update``, an
optimistic transaction (WATCH/MULTI) that re-verifies the signature, applies the change, re-signs,
and may add more commands (an rq enqueue) to the same atomic write, so that a state change and the
work it implies are never separated by a crash.

A writer that keeps the bytes it last read or wrote (``Latest``: the worker running a job, which
is nearly the only writer while it runs) first tries the change as a compare-and-set against
them: one round trip and no signature check (the bytes were verified or written by this
process), instead of WATCH, GET and EXEC. When anyone wrote the record since, the bytes differ,
nothing is written, and the change is made the usual way.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from enum import StrEnum
from typing import Any, TypeVar

import redis
from redis.client import Pipeline

from bot.errors import CommandError, RecordForged
from bot.records.signing import Signer

T = TypeVar("T")
JOB = "drbot:job:"
JOBS = "drbot:jobs"
ACTIVE = "drbot:jobs:active"  # ids of jobs not yet ended, so sweeps scale with them, not history
REQUEST = "drbot:request:"
# KEYS[1] the record; ARGV[1] the bytes expected there; ARGV[2] the new bytes ('' to leave the
# record as it is); then the commands of the same write, each as its argument count and its
# arguments. Run with pcall, as MULTI/EXEC runs them: one failing does not stop the others (its
# error is returned). Returns {1, errors...} once done, {0} (nothing done) if the bytes differ.
SWAP = """
local ok, current = pcall(redis.call, 'GET', KEYS[1])
if not ok or current ~= ARGV[1] then return {0} end
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2]) end
local result, i = {1}, 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local reply = redis.pcall(unpack(ARGV, i + 1, i + n))
  if type(reply) == 'table' and reply.err then table.insert(result, reply.err) end
  i = i + n + 1
end
return result
"""


class JobStatus(StrEnum):
    """Where a job is. The values are what the signed record stores (and what chat shows), so a
    record written before these names existed reads the same."""

    PLANNING = "planning"  # queued for the worker to build its plan
    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"  # approved (or needing none): queued for the worker to run
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PLANNED = "planned"  # a dry run, ended with its plan shown
    FAILED = "failed"
    CANCELLED = "cancelled"
    DENIED = "denied"
    EXPIRED = "expired"  # its approval, or the window for a worker to start it, ran out
    LOST = "lost"  # its worker died mid-step; state unknown
    REFUSED = "refused"  # the worker would not plan or run it (a forged record, a bad argument)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DENIED,
                      JobStatus.EXPIRED, JobStatus.LOST, JobStatus.PLANNED, JobStatus.REFUSED})
NOT_STARTED = (JobStatus.PLANNING, JobStatus.AWAITING_APPROVAL, JobStatus.QUEUED)
# \A and \Z, not ^ and $: "$" also matches before a trailing newline, and an id with one
# would name another Redis key than the job's.
JOB_ID = re.compile(r"\A[0-9a-f]{8}\Z")
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.LOST})


@dataclass
class Step:
    name: str
    target: str = ""
    describe: str = ""
    destructive: bool = False
    status: StepStatus = StepStatus.PENDING
    started: float | None = None
    ended: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # What the step recorded before its first effect (StepContext.intent), kept across attempts.
    intent: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started


@dataclass
class Approval:
    person: str
    account: str
    at: float
    digest: str
    expires: float
    attempt: int = 0  # the attempt it was given for: a retry needs its own (unless the policy
    version: int = 0  # says otherwise), and the record version it was given on


@dataclass
class Job:
    id: str
    command: str
    args: dict[str, Any]
    requester: str
    account: str
    frontend: str
    request_id: str
    thread: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    confirm: str | None = None
    status: JobStatus = JobStatus.PLANNING
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    timeout: int = 600
    targets: list[str] = field(default_factory=list)
    revision: str = ""
    digest: str | None = None
    approvals_needed: int = 0
    approvals: list[Approval] = field(default_factory=list)
    deadline: float | None = None
    locks: list[list[str]] = field(default_factory=list)
    decided_by: str | None = None
    steps: list[Step] = field(default_factory=list)
    attempt: int = 0
    error: str | None = None
    summary: str | None = None
    retried_by: str | None = None  # the person who asked for the latest retry, and their account
    retried_account: str | None = None
    version: int = 0  # grows by one with every write; what a start or a decision is bound to
    signed: float = 0.0  # when drbot last signed this record (set on load from the envelope)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def not_started(self) -> bool:
        """Planning, awaiting approval or queued: nothing of it has run."""
        return self.status in NOT_STARTED

    @property
    def retryable(self) -> bool:
        """Failed, cancelled or lost: /dr retry may run it again."""
        return self.status in RETRYABLE

    @property
    def current_step(self) -> Step | None:
        return next((s for s in self.steps if s.status in (
            StepStatus.RUNNING, StepStatus.PENDING, StepStatus.FAILED, StepStatus.CANCELLED)), None)

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict``'s result (the same canonical JSON, so the same signature), at
        a third of its cost: asdict deep-copies every value, and a record is sealed on every
        write."""
        return json.loads(json.dumps(self, default=_fields))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        data = dict(data)
        if "status" in data:
            data["status"] = JobStatus(data["status"])
        data["steps"] = [Step(**{**s, "status": StepStatus(s.get("status", StepStatus.PENDING))})
                         for s in data.get("steps", [])]
        data["approvals"] = [Approval(**a) for a in data.get("approvals", [])]
        return cls(**data)


def _fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields, for json.dumps (what asdict takes from it)."""
    if not is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"{type(obj).__name__} is not JSON")
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def new_id() -> str:
    return secrets.token_hex(4)


@dataclass
class Latest:
    """The bytes of a job record as this process last read or wrote them (see the module's
    docstring); kept up to date by ``JobStore.update``."""

    raw: bytes | None = None


class JobStore:
    def __init__(self, client: redis.Redis, signer: Signer) -> None:
        self.client = client
        self.signer = signer
        self._swap_script = client.register_script(SWAP)

    def _load(self, raw: bytes | None, job_id: str) -> Job:
        if raw is None:
            raise CommandError(f"no job {job_id}; /dr jobs lists recent ones")
        sealed = self.signer.opened(raw, f"job {job_id}", JOB + job_id)
        try:
            job = Job.from_dict(sealed.record)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise RecordForged(f"job {job_id}: unreadable record ({type(exc).__name__})") from None
        if job.id != job_id:
            raise RecordForged(f"job {job_id}: the record names job {job.id}")
        job.signed = sealed.signed
        return job

    def seal(self, job: Job) -> bytes:
        job.signed = time.time()
        return self.signer.seal(job.to_dict(), JOB + job.id, job.signed)

    def get(self, job_id: str, latest: Latest | None = None) -> Job:
        """The verified record; its bytes kept in ``latest`` when given."""
        raw = self.client.get(JOB + job_id)
        job = self._load(raw, job_id)
        if latest is not None:
            latest.raw = raw
        return job

    def create(self, job: Job, then: Callable[[Pipeline, Job], None] | None = None) -> tuple[Job, bool]:
        """Store a new job unless its request id was seen: returns (job, created)."""
        dedupe = f"{REQUEST}{job.frontend}:{job.request_id}"
        while True:
            with self.client.pipeline() as pipe:
                try:
                    pipe.watch(dedupe)
                    # one round trip: the request id, and whether the new job's id is free
                    seen, taken = pipe.mget(dedupe, JOB + job.id)
                    earlier = self._earlier(seen)
                    if earlier:
                        pipe.reset()
                        return earlier, False
                    while taken:
                        job.id = new_id()
                        taken = pipe.exists(JOB + job.id)
                    pipe.multi()
                    pipe.set(dedupe, job.id, ex=86400)
                    job.version = 1
                    pipe.set(JOB + job.id, self.seal(job))
                    pipe.zadd(JOBS, {job.id: job.created})
                    pipe.sadd(ACTIVE, job.id)
                    if then:
                        then(pipe, job)
                    pipe.execute()
                    return job, True
                except redis.WatchError:
                    continue

    def _earlier(self, seen: bytes | None) -> Job | None:
        """The job a request id was already used for; None if none (or what Redis holds there
        is no job drbot wrote: then the request is taken as new)."""
        if not seen:
            return None
        job_id = seen.decode(errors="replace")
        if not JOB_ID.match(job_id):
            return None
        try:
            return self.get(job_id)
        except (RecordForged, CommandError):
            return None

    def _watching(self, job_id: str, act: Callable[[Pipeline, Job, bytes], T]) -> T:
        """Run ``act`` on the job (and its bytes) as read under WATCH, again whenever another
        writer came between the read and ``act``'s transaction."""
        while True:
            with self.client.pipeline() as pipe:
                try:
                    pipe.watch(JOB + job_id)
                    raw = pipe.get(JOB + job_id)
                    return act(pipe, self._load(raw, job_id), raw)
                except redis.WatchError:
                    continue

    def update(self, job_id: str, change: Callable[[Job], Any],
               then: Callable[[Pipeline, Job], None] | None = None,
               latest: Latest | None = None) -> Job:
        """Apply ``change`` atomically; it may raise CommandError to refuse (nothing is written).
        With ``latest``, first as a compare-and-set against those bytes: ``change`` then sees
        the record as this process last read or wrote it, and what it raises there stands (the
        runner's checks, its attempt and the status it acted on, hold on that copy whenever they
        hold on the record)."""
        if latest is not None and latest.raw is not None:
            swapped = self._swap(job_id, latest, change, then)
            if swapped is not None:
                return swapped

        def act(pipe: Pipeline, job: Job, raw: bytes) -> Job:
            if change(job) is False:
                pipe.reset()
                if latest is not None:
                    latest.raw = raw
                return job
            sealed = self._bump(job)
            pipe.multi()
            pipe.set(JOB + job_id, sealed)
            self._stage(pipe, job, then)
            pipe.execute()
            if latest is not None:
                latest.raw = sealed
            return job
        return self._watching(job_id, act)

    def _bump(self, job: Job) -> bytes:
        job.updated = time.time()
        job.version += 1
        return self.seal(job)

    @staticmethod
    def _stage(pipe: Pipeline, job: Job, then: Callable[[Pipeline, Job], None] | None) -> None:
        """What goes with every write of the record: its place in the active set, and ``then``."""
        if job.terminal:
            pipe.srem(ACTIVE, job.id)
        else:
            pipe.sadd(ACTIVE, job.id)
        if then:
            then(pipe, job)

    def _swap(self, job_id: str, latest: Latest, change: Callable[[Job], Any],
              then: Callable[[Pipeline, Job], None] | None) -> Job | None:
        """``update`` as one compare-and-set script; None when the record is not ``latest``'s
        bytes any more (nothing was written), or the write needs a script of its own."""
        job = self._known(latest)
        if change(job) is False:
            return job if self._if_unchanged(job_id, latest, b"", lambda pipe: None) else None
        sealed = self._bump(job)
        if not self._if_unchanged(job_id, latest, sealed, lambda pipe: self._stage(pipe, job, then)):
            return None
        return job

    @staticmethod
    def _known(latest: Latest) -> Job:
        """The job in ``latest``'s bytes: verified when this process read them, or its own."""
        assert latest.raw is not None
        envelope = json.loads(latest.raw)
        job = Job.from_dict(envelope["record"])
        job.signed = envelope["signed"]
        return job

    def _if_unchanged(self, job_id: str, latest: Latest, sealed: bytes,
                      stage: Callable[[Pipeline], None]) -> bool:
        """Write ``sealed`` (unless empty) and ``stage``'s commands if the record still holds
        ``latest``'s bytes; False, with nothing done, if it does not or a command is a script
        (a script cannot call one)."""
        with self.client.pipeline(transaction=False) as staged:
            stage(staged)
            if staged.scripts:
                return False
            args: list[Any] = [latest.raw, sealed]
            for command, _ in staged.command_stack:
                args += [len(command), *command]
        done, *errors = self._swap_script([JOB + job_id], args)
        if not done:
            return False
        if sealed:
            latest.raw = sealed
        if errors:  # as a transaction's failed command would be, once the others are applied
            raise redis.ResponseError(errors[0].decode(errors="replace")
                                      if isinstance(errors[0], bytes) else str(errors[0]))
        return True

    def while_attempt(self, job_id: str, attempt: int, then: Callable[[Pipeline], None],
                      latest: Latest | None = None) -> bool:
        """Write ``then``'s commands in one transaction with the check that ``attempt`` still
        owns the job; False, with nothing written, once another attempt does. With ``latest``,
        first as one script that checks the record is still those bytes."""
        if latest is not None and latest.raw is not None and \
                self._known(latest).attempt == attempt and \
                self._if_unchanged(job_id, latest, b"", then):
            return True

        def act(pipe: Pipeline, job: Job, raw: bytes) -> bool:
            if job.attempt != attempt:
                return False
            pipe.multi()
            then(pipe)
            pipe.execute()
            return True
        return self._watching(job_id, act)

    def recent(self, limit: int = 10) -> list[str]:
        return ids(self.client.zrevrange(JOBS, 0, limit - 1))

    def active(self) -> list[str]:
        """Ids of jobs not yet ended."""
        try:
            return sorted(ids(self.client.smembers(ACTIVE)))
        except redis.ResponseError:  # not a set: written by someone else; nothing to sweep
            return []


def ids(members: Iterable[bytes]) -> list[str]:
    """The well-formed job ids among set members read from Redis (others are not drbot's)."""
    found = (m.decode(errors="replace") for m in members)
    return [i for i in found if JOB_ID.match(i)]


def busy_text(store: JobStore, key: str, holder: str) -> str:
    """'busy: node:x is held by job 3f9c2a1b (/dr rebuild-node, alice, running); ...'"""
    try:
        other = store.get(holder)
        who = f"job {holder} (/dr {other.command}, {other.requester}, {other.status})"
    except Exception:  # noqa: BLE001  (a holder we cannot describe is still named)
        who = f"job {holder}"
    return f"busy: {key} is held by {who}; wait for it or /dr cancel {holder}"

"""Runbooks: a plan of named, idempotent steps built by a handler from live state.

The worker builds the runbook twice: once to show and digest the plan (dry run, approval), and again
just before it runs, so that a plan which changed since it was approved is caught. Steps must be
idempotent and the list of steps stable across retries: a step decides at run time whether there is
anything left for it to do. A step that changes something first records what it will act on with
``StepContext.intent`` and computes its result from that record (DESIGN "Crash consistency").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from adapters.progress import Hooks, Progress
from bot.records.signing import digest

if TYPE_CHECKING:
    from bot.config.inventory import Inventory
    from bot.config.policy import Policy
    from bot.records.audit import Audit
    from bot.records.jobs import Job
    from bot.records.locks import Lease
    from bot.watch.check import CheckOutcome
    from bot.watch.evaluate import Finding
    from bot.worker.services import Services as Services  # the type handlers name their adapters by

T = TypeVar("T")


@dataclass(frozen=True)
class StepDef:
    name: str
    run: Callable[[StepContext], dict[str, Any] | None]
    target: str = ""
    describe: str = ""
    destructive: bool = False


@dataclass
class Runbook:
    steps: list[StepDef]
    targets: list[str]
    revision: str = ""
    notes: list[str] = field(default_factory=list)
    preflight: Callable[[], None] | None = None
    summary: Callable[[dict[str, dict[str, Any]]], str] | None = None

    def digest(self, command: str, args: dict[str, Any]) -> str:
        """What approvals bind to: command, arguments, IaC revision, targets and the steps."""
        return digest({"command": command, "args": args, "revision": self.revision,
                       "targets": self.targets,
                       "steps": [[s.name, s.target, s.destructive] for s in self.steps]})

    def describe(self) -> str:
        lines = [f"{i}. {s.name}" + (f" [{s.target}]" if s.target else "")
                 + (" (destructive)" if s.destructive else "")
                 + (f": {s.describe}" if s.describe else "")
                 for i, s in enumerate(self.steps, 1)]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


class Records(Protocol):
    """drbot's own records as a runbook sees them, built by the runner with the worker's
    connection and signing key: a handler never builds a Redis client, a signer or a policy.

    It reads (jobs, the policy as it is now, confirmations, leases, the backup watch) and writes
    only what is a runbook's own business: the audit trail, the autocomplete cache of names it
    listed, a backup check, and the eviction /dr unlock exists to make."""

    @property
    def policy(self) -> Policy:
        """The policy as it is now (read again when its file changes)."""
        ...

    @property
    def audit(self) -> Audit: ...

    def job(self, job_id: str) -> Job: ...

    def active(self) -> list[str]:
        """The ids of the jobs that have not ended."""
        ...

    def confirmation(self, job_id: str, phase: int) -> tuple[dict[str, Any] | None, str]:
        """The sealed confirmation of a phase, opened: (record, ''), (None, why it is refused) or
        (None, '') when there is none (bot/records/confirmations.py)."""
        ...

    def leases(self) -> list[Lease]: ...

    def subprocesses(self, job_id: str) -> list[str]:
        """The job's recorded subprocesses that may still be alive."""
        ...

    def evict(self, key: str, holders: list[str]) -> int:
        """Remove the leases of ``holders`` on ``key``; how many were removed."""
        ...

    def remember(self, source: str, names: list[str]) -> None:
        """Names just listed, for the bot's autocomplete (best effort)."""
        ...

    def check_backups(self) -> CheckOutcome:
        """Run the backup watch's check now (CommandError when one is running)."""
        ...

    def latest_backup_check(self) -> tuple[list[Finding], dict[str, Any] | None]:
        """The findings of the latest check, worst first, and its summary record (None if none)."""
        ...


class _NoRecords:
    """Where no runner built the records (a unit test of a step that does not need them)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"drbot's records ({name}) are not available here: the runner gives "
                           "them to a runbook")


def _no_records() -> Records:
    return _NoRecords()  # type: ignore[return-value]


@dataclass
class PlanContext:
    """What a handler gets to build its runbook: the arguments, inventory, adapters and drbot's
    own records."""

    args: dict[str, Any]
    inventory: Inventory
    services: Services
    job_id: str = ""
    records: Records = field(default_factory=_no_records)


@dataclass
class StepContext:
    """What a running step gets: earlier steps' checkpoints, hooks for adapters, progress, and
    drbot's own records."""

    job_id: str
    step: str
    results: dict[str, dict[str, Any]]
    hooks: Hooks
    services: Services
    inventory: Inventory
    recorded: dict[str, Any] = field(default_factory=dict)
    record: Callable[[str, Any], None] | None = None
    attempt: int = 0
    records: Records = field(default_factory=_no_records)
    post_file: Callable[[str, bytes, str], None] | None = None

    def progress(self, message: str, **fields: str) -> None:
        self.hooks.report(Progress(message=message, **fields))

    def intent(self, key: str, compute: Callable[[], T]) -> T:
        """What this step will act on, fixed before its first effect and kept across attempts.

        The first attempt computes it from live state and writes it into the job before
        returning; a retry gets the recorded value back, never a recomputation from a world the
        step has already changed (a replica it deleted no longer shows which volume must heal).
        A step computes its result from this record and from what it observes now. The value
        must be JSON (it is stored in the signed job record).
        """
        if key in self.recorded:
            return self.recorded[key]  # type: ignore[no-any-return]
        value = compute()
        if self.record is not None:
            self.record(key, value)
        self.recorded[key] = value
        return value

    def __post_init__(self) -> None:
        self._earlier = frozenset(self.recorded)

    def resumed(self, key: str) -> bool:
        """True when an earlier attempt of this step recorded ``key`` (and so may have acted)."""
        return key in self._earlier

    def attach(self, name: str, data: bytes, caption: str) -> None:
        """Post a file (a picture) in the job's thread, with a one-line caption. The worker
        stores it; the bot's relay posts it (the worker holds no chat token)."""
        if self.post_file is not None:
            self.post_file(name, data, caption)

    def cancelled(self) -> bool:
        return self.hooks.cancelled()

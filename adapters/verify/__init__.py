"""Proving that a backup restores, from the object store alone, with the real tools of each format.

A verification ends in one ``Verification``: ``Outcome.OK`` when everything it checked held,
``Outcome.FAILED`` when the backup itself is damaged (the ``problem`` names the first thing that
broke). When verification cannot run at all (a tool is missing, the store is unreachable, no
scratch space) an ``AdapterError`` is raised instead: that says nothing about the backup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class BackupKind(StrEnum):
    LONGHORN = "longhorn"
    CNPG = "cnpg"
    ETCD = "etcd"


class VerificationOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class Verification:
    """What one verification found. ``checked`` lists, in order, what was proven; ``details``
    carries kind-specific figures (recovered point in time, files on the filesystem...)."""

    kind: BackupKind
    name: str
    backup_id: str
    outcome: VerificationOutcome
    verified_at: datetime
    duration: float
    bytes_read: int
    checked: tuple[str, ...] = ()
    problem: str = ""
    details: dict[str, str | int | float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is VerificationOutcome.OK

    def summary(self) -> str:
        """One line for a chat thread: the outcome, and the problem or what was proven."""
        head = f"{self.kind} {self.name} backup {self.backup_id}"
        if not self.ok:
            return f"{head}: FAILED: {self.problem}"
        return f"{head}: restorable ({'; '.join(self.checked)})"

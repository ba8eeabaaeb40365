"""How long the recovery runbooks took when they last ran, from the signed job records.

Only succeeded runs count, and only the time their steps ran: waiting for an approval or for a
person's `/dr confirm` between phases is people's time, not the runbook's.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.errors import CommandError, RecordForged
from bot.records.jobs import JobStatus

if TYPE_CHECKING:
    from bot.records.jobs import Job, JobStore

SCANNED = 500  # newest job records read
CONFIRM_STEP = "confirm"  # rebuild-cluster's steps that wait for a person start with this


@dataclass(frozen=True)
class Run:
    job_id: str
    seconds: float
    ended: float


def run_seconds(job: Job) -> float | None:
    """The runbook's own time: its steps' durations, people's waits left out."""
    times = [s.seconds for s in job.steps if not s.name.startswith(CONFIRM_STEP)]
    if not times or any(t is None for t in times):
        return None
    return float(sum(t for t in times if t is not None))


def runs(store: JobStore, commands: set[str], limit: int = SCANNED) -> dict[str, list[Run]]:
    """command -> its succeeded runs, newest first (each record read once)."""
    found: dict[str, list[Run]] = {c: [] for c in commands}
    for job_id in store.recent(limit):
        try:
            job = store.get(job_id)
        except (CommandError, RecordForged):  # gone, or not written by drbot: not a measurement
            continue
        if job.command not in commands or job.status != JobStatus.SUCCEEDED or job.dry_run:
            continue
        seconds = run_seconds(job)
        if seconds is not None:
            ended = max((s.ended or 0.0) for s in job.steps) or job.updated
            found[job.command].append(Run(job.id, seconds, ended))
    for listed in found.values():
        listed.sort(key=lambda r: r.ended, reverse=True)
    return found


def typical(listed: list[Run]) -> float:
    return float(statistics.median(r.seconds for r in listed))

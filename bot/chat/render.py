"""Neutral renderings of a job: the status card (edited in place) and milestone replies.

Frontends turn a Card into Block Kit, an embed or console lines; nothing here knows a platform.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bot.records.events import Event, EventType
from bot.records.jobs import Job, JobStatus, StepStatus

ICONS = {StepStatus.PENDING: "·", StepStatus.RUNNING: "▶", StepStatus.DONE: "✓",
         StepStatus.FAILED: "✗", StepStatus.CANCELLED: "■"}
FINAL = frozenset({EventType.DONE, EventType.FAILED, EventType.CANCELLED, EventType.LOST,
                   EventType.REFUSED, EventType.DENIED, EventType.EXPIRED})


@dataclass
class Card:
    job_id: str
    title: str
    status: str
    lines: list[str] = field(default_factory=list)
    latest: str = ""
    approvable: bool = False
    decided_at: float | None = None  # when the last approval or the denial was given
    clock: str = ""  # "step 3/7, 2m05s" while it runs; "took 4m10s" once it ran

    def text(self) -> str:
        head = f"[{self.job_id}] {self.title}: {self.status.replace('_', ' ')}" + \
            (f" ({self.clock})" if self.clock else "")
        body = [f"  {line}" for line in self.lines]
        if self.latest:
            body.append(f"  … {self.latest}")
        return "\n".join([head, *body])

    def line(self) -> str:
        """One line for terminals and compact views: where the job is now."""
        running = next((ln for ln in self.lines if ln.startswith(ICONS[StepStatus.RUNNING])), "")[2:]
        step = running.split(" [")[0].split(" (")[0]
        if self.latest and running and self.latest.startswith(step):
            where = f" | {self.latest}"  # the progress line names its step itself
        else:
            where = (f" | {running}" if running else "") + \
                (f" | {self.latest}" if self.latest and running else "")
        clock = f" ({self.clock})" if self.clock else ""
        return f"[{self.job_id}] {self.status.replace('_', ' ')}{clock}{where}"


def duration(seconds: float) -> str:
    """45s, 2m05s, 1h02m: short enough for a card's first line."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def clock(job: Job, now: float | None = None) -> str:
    """Which step of how many, and how long the run has taken: while running, the step that
    runs and the time since the first step started; once ended, the time it took."""
    started = [s.started for s in job.steps if s.started is not None]
    if not started:
        return ""
    first = min(started)
    if job.status == JobStatus.RUNNING:
        index = next((i for i, s in enumerate(job.steps) if s.status == StepStatus.RUNNING), None)
        if index is None:
            index = sum(s.status == StepStatus.DONE for s in job.steps)
        step = min(index + 1, len(job.steps))
        return f"step {step}/{len(job.steps)}, {duration((now or time.time()) - first)}"
    ended = [s.ended for s in job.steps if s.ended is not None]
    if job.terminal and ended:
        return f"took {duration(max(ended) - first)}"
    return ""


def card(job: Job, latest: Event | None = None) -> Card:
    lines = []
    for step in job.steps:
        took = f" ({step.seconds:.1f}s)" if step.seconds is not None else ""
        target = f" [{step.target}]" if step.target else ""
        lines.append(f"{ICONS.get(step.status, '?')} {step.name}{target}{took}")
    if job.approvals:
        names = ", ".join(a.person for a in job.approvals)
        lines.append(f"approved by {names} ({len(job.approvals)}/{job.approvals_needed})")
    if job.decided_by and job.status == JobStatus.DENIED:
        lines.append(f"denied by {job.decided_by}")
    args = " ".join(str(v) for v in job.args.values() if v not in (None, False, True))
    title = f"/dr {job.command}{' ' + args if args else ''}{' --dry-run' if job.dry_run else ''}" \
            f" by {job.requester}"
    progress = ""
    if latest and latest.type == EventType.PROGRESS and job.status == JobStatus.RUNNING:
        progress = latest.message
    decided_at = job.approvals[-1].at if job.approvals else None
    if job.decided_by and job.status == JobStatus.DENIED:
        decided_at = job.updated
    return Card(job.id, title, job.status, lines, progress,
                approvable=job.status == JobStatus.AWAITING_APPROVAL, decided_at=decided_at,
                clock=clock(job))


def milestone(event: Event) -> str:
    """The text of a thread reply for a milestone event."""
    if event.type == EventType.PLAN:
        head = "Plan (dry run)" if event.status == "dry-run" else "Plan"
        return f"{head}:\n{event.message}"
    return event.message

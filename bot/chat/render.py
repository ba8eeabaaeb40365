"""Neutral renderings of a job: the status card (edited in place) and milestone replies.

Frontends turn a Card into Block Kit, an embed or console lines; nothing here knows a platform.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.records.events import Event
from bot.records.jobs import Job

ICONS = {"pending": "·", "running": "▶", "done": "✓", "failed": "✗", "cancelled": "■",
         "skipped": "–"}
FINAL = frozenset({"done", "failed", "cancelled", "lost", "refused", "denied", "expired"})


@dataclass
class Card:
    job_id: str
    title: str
    status: str
    lines: list[str] = field(default_factory=list)
    latest: str = ""
    approvable: bool = False
    decided_at: float | None = None  # when the last approval or the denial was given

    def text(self) -> str:
        head = f"[{self.job_id}] {self.title}: {self.status.replace('_', ' ')}"
        body = [f"  {line}" for line in self.lines]
        if self.latest:
            body.append(f"  … {self.latest}")
        return "\n".join([head, *body])

    def line(self) -> str:
        """One line for terminals and compact views: where the job is now."""
        running = next((ln for ln in self.lines if ln.startswith(ICONS["running"])), "")[2:]
        step = running.split(" [")[0].split(" (")[0]
        if self.latest and running and self.latest.startswith(step):
            where = f" | {self.latest}"  # the progress line names its step itself
        else:
            where = (f" | {running}" if running else "") + \
                (f" | {self.latest}" if self.latest and running else "")
        return f"[{self.job_id}] {self.status.replace('_', ' ')}{where}"


def card(job: Job, latest: Event | None = None) -> Card:
    lines = []
    for step in job.steps:
        took = f" ({step.seconds:.1f}s)" if step.seconds is not None else ""
        target = f" [{step.target}]" if step.target else ""
        lines.append(f"{ICONS.get(step.status, '?')} {step.name}{target}{took}")
    if job.approvals:
        names = ", ".join(a.person for a in job.approvals)
        lines.append(f"approved by {names} ({len(job.approvals)}/{job.approvals_needed})")
    if job.decided_by and job.status == "denied":
        lines.append(f"denied by {job.decided_by}")
    args = " ".join(str(v) for v in job.args.values() if v not in (None, False, True))
    title = f"/dr {job.command}{' ' + args if args else ''}{' --dry-run' if job.dry_run else ''}" \
            f" by {job.requester}"
    progress = ""
    if latest and latest.type == "progress" and job.status == "running":
        progress = latest.message
    decided_at = job.approvals[-1].at if job.approvals else None
    if job.decided_by and job.status == "denied":
        decided_at = job.updated
    return Card(job.id, title, job.status, lines, progress,
                approvable=job.status == "awaiting_approval", decided_at=decided_at)


def milestone(event: Event) -> str:
    """The text of a thread reply for a milestone event."""
    if event.type == "plan":
        head = "Plan (dry run)" if event.status == "dry-run" else "Plan"
        return f"{head}:\n{event.message}"
    return event.message

"""/dr jobs and /dr job <id>: recent jobs, and one job's steps."""

from __future__ import annotations

import time

from bot.control import ControlContext, Reply
from bot.grammar import JOB_ID, Param
from bot.registry import control


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@control("jobs", summary="recent jobs and their state")
def jobs(ctx: ControlContext) -> Reply:
    lines = []
    for job_id in ctx.recent(15):
        job = ctx.job(job_id)
        lines.append(f"{job.id}  {job.status:<17} {age(time.time() - job.created):>4} ago  "
                     f"{ctx.describe(job)}")
    return Reply("\n".join(lines) if lines else "no jobs yet", ephemeral=True)


@control("job", summary="one job's steps, approvals and result",
         params=(Param("id", "the job id", kind=JOB_ID, complete="jobs"),))
def job(ctx: ControlContext) -> Reply:
    found = ctx.job(str(ctx.args["id"]))
    text = ctx.card(found)
    for extra in (found.error and f"  error: {found.error}", found.summary and
                  f"  result: {found.summary}"):
        if extra:
            text += "\n" + extra
    return Reply(text, ephemeral=True)

"""/dr readiness, and the scheduler's weekly readiness-report: for each scenario of the recovery
plan, could its runbook run now, what would each object lose (RPO) and how long would it take
(RTO), each number with its basis and age; and the backup timeline as a picture in the thread.

Read-only: the report is built by bot/readiness from the runbooks' own preflight checks, the
doctor's checks, the backup facts and the verification, drill and job records.
"""

from __future__ import annotations

from typing import Any

from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef

STEP = "readiness"
TIMEOUT = 1800
FIRST_LINE = "reading the backups, the preflights and what was measured"


def examine(step: StepContext, weekly: bool) -> dict[str, Any]:
    from bot.readiness import report as readiness

    step.progress(FIRST_LINE)  # at once: the rest takes a while on a large homelab
    built = readiness.run(step.services, lambda text: step.progress(text))
    if weekly:
        readiness.post(step.services, built, step.job_id)
    elif built.chart is not None:
        step.attach(readiness.picture_name(built), built.chart.png, readiness.caption(built))
    worst = built.worst
    chart = built.chart
    return {"text": built.text(), "objects": len(built.objects),
            "chart": {"rows": chart.rows, "days": chart.geometry.days,
                      "at": chart.geometry.now} if chart else {},
            "runnable": {str(s.verdict.scenario): s.verdict.runnable for s in built.scenarios},
            "worst": worst.key if worst else ""}


def _runbook(weekly: bool) -> Runbook:
    return Runbook([StepDef(STEP, lambda step: examine(step, weekly))], targets=[],
                   summary=lambda results: results[STEP]["text"])


@runbook("readiness", summary="if a node, a host or the whole cluster died now: could drbot "
         "rebuild it, what would be lost (RPO), how long it would take (RTO), and "
         "the backup timeline as a picture", mutating=False, timeout=TIMEOUT)
def readiness(ctx: PlanContext) -> Runbook:
    return _runbook(weekly=False)


@runbook("readiness-report", summary="the scheduler's weekly readiness report to the alert "
         "channels", mutating=False, timeout=TIMEOUT, system=True)
def readiness_report(ctx: PlanContext) -> Runbook:
    return _runbook(weekly=True)

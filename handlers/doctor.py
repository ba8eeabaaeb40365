"""/dr doctor, and the scheduler's daily doctor-check: every credential and connection a runbook
needs, checked read-only on the worker (which holds them), each line green or red with its fix.

Both record the red lines in the doctor's alert state (bot.doctor.red_alerts), so a credential that
broke since the last run raises one alert in the `alerts:` channels, and its recovery another.
"""

from __future__ import annotations

from typing import Any

from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef

STEP = "check credentials and drift"


def examine(step: StepContext) -> dict[str, Any]:
    from bot.doctor.run import run_and_record

    return run_and_record(step.services)


def _runbook() -> Runbook:
    return Runbook([StepDef(STEP, examine)], targets=[],
                   summary=lambda results: results[STEP]["text"])


@runbook("doctor", summary="check every credential and connection the runbooks need, and drift",
         mutating=False, timeout=900)
def doctor(ctx: PlanContext) -> Runbook:
    return _runbook()


@runbook("doctor-check", summary="the scheduler's daily doctor run", mutating=False,
         timeout=900, system=True)
def doctor_check(ctx: PlanContext) -> Runbook:
    return _runbook()

"""A runbook that logs from its plan and its steps (loaded as a plugin by the logging tests)."""

from __future__ import annotations

import logging

from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef

log = logging.getLogger("drbot.handlers.chatty")


def step(ctx: StepContext) -> dict[str, int]:
    log.info("step %s runs", ctx.step)
    logging.getLogger("adapters.chatty").warning("an adapter speaks during %s", ctx.step)
    return {"ok": 1}


@runbook("chatty", summary="logs a line from every phase", timeout=60)
def chatty(ctx: PlanContext) -> Runbook:
    log.info("planning")
    return Runbook([StepDef("first", step, target="t"), StepDef("second", step, target="t")],
                   targets=["t"])

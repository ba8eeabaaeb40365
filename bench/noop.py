"""A no-op runbook (loaded as a plugin) and a no-op rq function, for the latency benchmark."""

from __future__ import annotations

import os
import time

import redis

from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepDef


@runbook("noop", summary="does nothing (benchmark)", mutating=False, timeout=60)
def noop(ctx: PlanContext) -> Runbook:
    return Runbook([StepDef("nothing", lambda step: None)], targets=[])


def touch(key: str) -> None:
    """The floor's job: record when it started, nothing else."""
    redis.Redis.from_url(os.environ["REDIS_URL"]).rpush(key, repr(time.time()))

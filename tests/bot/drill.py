"""Drill runbooks for testing the engine: steps a test steers through Redis keys.

Loaded by the worker through the `plugins` setting (as an operator would load their own runbooks).
Its keys live under ``drbot:plugin:``, the family the worker's Redis user may use for plugins'
own state (docs/security.md, "Redis ACL users"). `/dr exercise <name>`: step "one" counts its
runs; step "two", while drbot:plugin:<name>:hold exists, waits until drbot:plugin:<name>:go
exists (polling for cancellation, optionally starting a `sleep` child in its own session), or
fails while drbot:plugin:<name>:fail exists; step "three" counts its runs. The plan's targets come
from the key drbot:plugin:<name>:targets, standing for live state that can change between
approval and start."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from adapters.errors import AdapterError, Cancelled
from bot.config.inventory import Inventory
from bot.grammar import Param
from bot.records.locks import LockKey, exclusive, shared
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef


def client() -> redis.Redis:
    """Patient, like a real adapter's client: it rides out a Redis restart."""
    password_file = os.environ.get("DRBOT_REDIS_PASSWORD_FILE")  # a user's own, as in the chart
    return redis.Redis.from_url(os.environ["REDIS_URL"], retry=Retry(ExponentialBackoff(1, 0.05), 20),
                                retry_on_error=[redis.ConnectionError],
                                password=Path(password_file).read_text().strip()
                                if password_file else None)


def locks(args: dict[str, Any], inventory: Inventory) -> list[LockKey]:
    return [shared("cluster"), exclusive(f"drill:{args['name']}")]


def count(name: str, step: str) -> dict[str, Any]:
    return {"runs": client().incr(f"drbot:plugin:{name}:{step}")}


def wait_for_go(ctx: StepContext, name: str) -> dict[str, Any]:
    r = client()
    r.incr(f"drbot:plugin:{name}:two")
    if r.exists(f"drbot:plugin:{name}:spawn"):
        child = subprocess.Popen(["sleep", "300"], start_new_session=True)
        ctx.hooks.spawned(child.pid)
        r.set(f"drbot:plugin:{name}:child", child.pid)
    r.set(f"drbot:plugin:{name}:in-two", 1)
    while True:
        if r.exists(f"drbot:plugin:{name}:fail"):
            raise AdapterError(f"drill {name} told to fail")
        if not r.exists(f"drbot:plugin:{name}:hold") or r.exists(f"drbot:plugin:{name}:go"):
            break
        if ctx.cancelled() and not r.exists(f"drbot:plugin:{name}:stubborn"):
            raise Cancelled("drill step stopped on request")
        ctx.progress(f"waiting for go ({r.incr(f'drbot:plugin:{name}:ticks')})")
        time.sleep(0.05)
    return {"went": True}


@runbook("exercise", summary="a drill runbook for tests", params=(Param("name", "drill name"),),
         locks=locks, timeout=120)
@runbook("exercise-gated", summary="a drill runbook that needs approval",
         params=(Param("name", "drill name"),), locks=locks, timeout=120)
def drill(ctx: PlanContext) -> Runbook:
    name = str(ctx.args["name"])
    targets = (client().get(f"drbot:plugin:{name}:targets") or b"a").decode().split(",")
    return Runbook(
        [StepDef("one", lambda s: count(name, "one"), target=name),
         StepDef("two", lambda s: wait_for_go(s, name), target=name, destructive=True),
         StepDef("three", lambda s: count(name, "three"), target=name)],
        targets=targets, summary=lambda results: f"drill {name} finished")


def act_on_recorded(ctx: StepContext, name: str) -> dict[str, Any]:
    """Records the world as it is (key drbot:plugin:<name>:world) before acting, then waits like step
    two; returns what it recorded and whether an earlier attempt did."""
    r = client()
    seen = ctx.intent("world", lambda: (r.get(f"drbot:plugin:{name}:world") or b"").decode())
    resumed = ctx.resumed("world")
    r.set(f"drbot:plugin:{name}:in-act", 1)
    while r.exists(f"drbot:plugin:{name}:hold") and not r.exists(f"drbot:plugin:{name}:go"):
        if ctx.cancelled():
            raise Cancelled("drill step stopped on request")
        time.sleep(0.05)
    return {"acted_on": seen, "resumed": resumed}


@runbook("exercise-intent", summary="a drill runbook whose step records its intent",
         params=(Param("name", "drill name"),), locks=locks, timeout=120)
def drill_intent(ctx: PlanContext) -> Runbook:
    name = str(ctx.args["name"])
    return Runbook([StepDef("act", lambda s: act_on_recorded(s, name), target=name,
                            destructive=True)],
                   targets=[name], summary=lambda results: f"acted on {results['act']['acted_on']}")


@runbook("exercise-phases", summary="a drill runbook in two phases, each confirmed in the thread",
         params=(Param("name", "drill name"),), locks=locks, timeout=120)
def drill_phases(ctx: PlanContext) -> Runbook:
    """Like rebuild-cluster's phases (handlers/confirm.py): each waits for /dr confirm."""
    from handlers.confirm import step_name, wait_for_confirmation

    name = str(ctx.args["name"])
    return Runbook(
        [StepDef(step_name(1), lambda s: wait_for_confirmation(s, 1, "first", 60), target=name),
         StepDef("one", lambda s: count(name, "one"), target=name, destructive=True),
         StepDef(step_name(2), lambda s: wait_for_confirmation(s, 2, "second", 60), target=name),
         StepDef("two", lambda s: count(name, "two"), target=name, destructive=True)],
        targets=[name], summary=lambda results: f"drill {name} finished")

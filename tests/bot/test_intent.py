"""Intent before effect: a step's record of what it acts on survives the worker and a retry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.runbook import StepContext
from lab.fakes.frontend import POLICY
from tests.bot.harness import Harness
from tests.support import Recorder, wait_until


@pytest.fixture
def drbot_intent(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    policy = POLICY.replace("commands:\n", "commands:\n  exercise-intent: {allow: [admin]}\n")
    harness = Harness(redis_url, tmp_path, policy_text=policy)
    try:
        harness.start_worker()
        harness.start_relay()
        yield harness
    finally:
        harness.close()


def context(recorded: dict[str, object], writes: list[tuple[str, object]]) -> StepContext:
    return StepContext("0123abcd", "act", {}, Recorder().hooks, None, None,  # type: ignore[arg-type]
                       recorded, lambda key, value: writes.append((key, value)))


def test_intent_is_written_before_it_is_returned_and_then_kept() -> None:
    writes: list[tuple[str, object]] = []
    ctx = context({}, writes)
    assert ctx.intent("set", lambda: ["a", "b"]) == ["a", "b"]
    assert writes == [("set", ["a", "b"])] and not ctx.resumed("set")
    assert ctx.intent("set", lambda: ["other"]) == ["a", "b"]  # computed once per attempt
    assert writes == [("set", ["a", "b"])]


def test_a_later_attempt_gets_the_record_not_a_recomputation() -> None:
    writes: list[tuple[str, object]] = []
    ctx = context({"set": ["a", "b"]}, writes)
    assert ctx.intent("set", lambda: ["b"]) == ["a", "b"]
    assert ctx.resumed("set") and not ctx.resumed("other") and writes == []


def test_a_step_resumes_from_its_record_after_its_worker_died(drbot_intent: Harness) -> None:
    drbot = drbot_intent
    drbot.redis.set("drbot:plugin:a:world", "before")
    drbot.redis.set("drbot:plugin:a:hold", 1)
    job_id = drbot.say("/dr exercise-intent a").job_id
    assert job_id
    wait_until(lambda: drbot.redis.exists("drbot:plugin:a:in-act"), what="the step to act")
    assert drbot.job(job_id).steps[0].intent == {"world": "before"}  # written before acting
    drbot.kill_workers()
    drbot.wait_status(job_id, "lost", timeout=60)
    drbot.redis.set("drbot:plugin:a:world", "after")  # what the step changed, seen by a recomputation
    drbot.redis.set("drbot:plugin:a:go", 1)
    drbot.start_worker()
    assert drbot.say(f"/dr retry {job_id}").ok
    job = drbot.wait_status(job_id, "succeeded", timeout=60)
    assert job.steps[0].result == {"acted_on": "before", "resumed": True}
    assert "acted on before" in drbot.wait_reply(job_id, "acted on")
    assert "(in 2 attempts)" in drbot.wait_reply(job_id, "acted on")

"""Stopping jobs: cancel (cooperative, then firm), a worker killed mid-job, and retry."""

from __future__ import annotations

import os
import threading

from adapters.subprocesses import alive
from bot.chat.reaper import reap
from tests.bot.harness import Harness, wait_until
from tests.support import PROMPT


def hold(drbot: Harness, name: str = "a") -> None:
    """Make the drill's step two wait (until drbot:plugin:<name>:go is set)."""
    drbot.redis.set(f"drbot:plugin:{name}:hold", 1)


def in_step_two(drbot: Harness, name: str = "a") -> None:
    wait_until(lambda: drbot.redis.exists(f"drbot:plugin:{name}:in-two"), what="step two to start")


def test_cancel_of_a_running_job(drbot: Harness) -> None:
    hold(drbot)
    job_id = drbot.say("/dr exercise a").job_id
    in_step_two(drbot)
    reply = drbot.say(f"/dr cancel {job_id}", who="carol")
    assert reply.ok and "stopping (step two)" in reply.text
    job = drbot.wait_status(job_id, "cancelled", timeout=PROMPT)
    assert [s.status for s in job.steps] == ["done", "cancelled", "pending"]
    assert drbot.rt.locks.holders("drill:a") == {} and drbot.rt.locks.holders("cluster") == {}
    text = drbot.wait_reply(job_id, "cancelled by carol during step 'two'")
    assert "finished steps: one" in text and f"/dr retry {job_id}" in text


def test_cancel_before_start_changes_nothing(drbot: Harness) -> None:
    job_id = drbot.say("/dr exercise-gated a", who="carol").job_id
    drbot.wait_status(job_id, "awaiting_approval")
    assert drbot.say(f"/dr cancel {job_id}").ok
    assert drbot.job(job_id).status == "cancelled"
    assert "already ended" in drbot.say(f"/dr cancel {job_id}").text
    assert not drbot.say(f"/dr approve {job_id}", who="bob").ok


def test_a_step_that_ignores_cancel_is_stopped_after_the_grace(drbot: Harness) -> None:
    hold(drbot)
    drbot.redis.set("drbot:plugin:a:stubborn", 1)
    job_id = drbot.say("/dr exercise a").job_id
    in_step_two(drbot)
    drbot.say(f"/dr cancel {job_id}")
    job = drbot.wait_status(job_id, "cancelled", timeout=15)  # 2×grace + 5 s
    assert drbot.rt.locks.holders("drill:a") == {}
    drbot.wait_reply(job_id, "did not stop in time")
    assert job.steps[0].status == "done"


def test_worker_killed_mid_job_is_reported_and_retry_resumes(drbot: Harness) -> None:
    hold(drbot)
    job_id = drbot.say("/dr exercise a").job_id
    in_step_two(drbot)
    drbot.kill_workers()
    drbot.wait_status(job_id, "lost", timeout=60)
    drbot.wait_reply(job_id, "worker lost during step two; state unknown; "
                             f"/dr retry {job_id} resumes")
    assert drbot.rt.locks.holders("drill:a") == {} and drbot.rt.locks.holders("cluster") == {}
    drbot.start_worker()
    drbot.redis.set("drbot:plugin:a:go", 1)
    assert drbot.say(f"/dr retry {job_id}", who="carol").ok
    job = drbot.wait_status(job_id, "succeeded")
    assert drbot.redis.get("drbot:plugin:a:one") == b"1"  # not redone
    assert drbot.redis.get("drbot:plugin:a:two") == b"2" and job.attempt == 1
    drbot.wait_reply(job_id, "resuming at two (1 step(s) already done)")


def test_retry_is_refused_while_a_subprocess_of_the_job_lives(drbot: Harness) -> None:
    hold(drbot)
    drbot.redis.set("drbot:plugin:a:spawn", 1)
    job_id = drbot.say("/dr exercise a").job_id
    in_step_two(drbot)
    child = int(drbot.redis.get("drbot:plugin:a:child"))
    drbot.kill_workers()  # the child runs in its own session and survives its worker
    drbot.wait_status(job_id, "lost", timeout=60)
    assert alive(child)
    reply = drbot.say(f"/dr retry {job_id}")
    assert not reply.ok and f"pid {child}" in reply.text
    os.kill(child, 9)
    wait_until(lambda: not alive(child), what="the child to end")
    drbot.start_worker()
    drbot.redis.set("drbot:plugin:a:go", 1)
    drbot.redis.delete("drbot:plugin:a:spawn")
    assert drbot.say(f"/dr retry {job_id}").ok
    drbot.wait_status(job_id, "succeeded")


def test_retry_only_for_failed_cancelled_or_lost(drbot: Harness) -> None:
    job_id = drbot.say("/dr exercise a").job_id
    drbot.wait_status(job_id, "succeeded")
    assert "only failed, cancelled or lost" in drbot.say(f"/dr retry {job_id}").text


def test_a_job_that_ends_is_never_taken_for_lost(drbot: Harness) -> None:
    """The proof of life goes in the same write as the outcome: a reaper looking at any moment
    never finds a running job without one."""
    changed: list[str] = []
    stop = threading.Event()

    def reaping() -> None:
        while not stop.is_set():
            changed.extend(reap(drbot.rt))

    reaper = threading.Thread(target=reaping, daemon=True)
    reaper.start()
    try:
        ids = [drbot.say(f"/dr exercise r{i}").job_id for i in range(40)]
        for job_id in ids:
            drbot.wait_status(job_id, "succeeded", "lost", "failed", timeout=60)
    finally:
        stop.set()
        reaper.join(10)
    assert changed == []
    assert [drbot.job(job_id).status for job_id in ids] == ["succeeded"] * len(ids)

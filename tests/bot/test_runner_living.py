"""The runner's own check for a living subprocess of an earlier attempt, apart from /dr retry's:
a job queued again by any path (a retry whose check raced a playbook's start, a record restored
from a backup) must not run beside what its earlier attempt left running."""

from __future__ import annotations

import os
import signal

from adapters.subprocesses import alive
from bot.chat import relay
from bot.records.jobs import Job
from bot.records.queue import enqueue, queue
from tests.bot.harness import Harness
from tests.support import wait_until


def queued_again(drbot: Harness, job_id: str) -> None:
    """What /dr retry writes, without its own check."""
    def change(job: Job) -> None:
        job.status, job.error, job.attempt = "queued", None, job.attempt + 1
        for step in job.steps:
            if step.status != "done":
                step.status, step.error, step.started, step.ended = "pending", None, None, None
    q = queue(drbot.redis, drbot.settings.queue)
    drbot.rt.store.update(job_id, change, lambda pipe, j: enqueue(q, pipe, j, "retry"))
    relay.reactivate(drbot.redis, job_id)  # the thread follows the job again


def test_the_runner_refuses_while_a_subprocess_of_the_job_lives(drbot: Harness) -> None:
    drbot.redis.set("drbot:plugin:a:hold", 1)
    drbot.redis.set("drbot:plugin:a:spawn", 1)
    job_id = drbot.say("/dr exercise a").job_id
    assert job_id
    wait_until(lambda: drbot.redis.exists("drbot:plugin:a:in-two"), what="step two to start")
    child = int(drbot.redis.get("drbot:plugin:a:child") or 0)
    drbot.kill_workers()  # the child lives on in its own session
    drbot.wait_status(job_id, "lost", timeout=60)
    drbot.start_worker()
    try:
        queued_again(drbot, job_id)
        job = drbot.wait_status(job_id, "failed", "succeeded", timeout=60)
        assert job.status == "failed" and job.error == "subprocess alive"
        assert drbot.redis.get("drbot:plugin:a:one") == b"1" and drbot.redis.get("drbot:plugin:a:two") == b"1"
        drbot.wait_reply(job_id, f"still running (pid {child}")
    finally:
        os.kill(child, signal.SIGKILL)
    wait_until(lambda: not alive(child), what="the child to end")
    drbot.redis.set("drbot:plugin:a:go", 1)
    drbot.redis.delete("drbot:plugin:a:spawn")
    queued_again(drbot, job_id)
    assert drbot.wait_status(job_id, "succeeded", "failed", timeout=60).status == "succeeded"

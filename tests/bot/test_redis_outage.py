"""Redis down at submit: a clear answer, no crash. Restarted mid-run: bot and worker reconnect."""

from __future__ import annotations

from lab.fakes.redis import RedisServer
from tests.bot.harness import Harness


def test_redis_down_at_submit_says_queue_unavailable(core_only: Harness,
                                                     redis_server: RedisServer) -> None:
    redis_server.stop()
    reply = core_only.say("/dr exercise a")
    assert not reply.ok and reply.text.startswith("queue unavailable")
    assert "nothing was queued" in reply.text
    redis_server.start()
    assert core_only.say("/dr exercise a").ok


def test_redis_restart_mid_run_bot_and_worker_reconnect(drbot: Harness,
                                                        redis_server: RedisServer) -> None:
    drbot.redis.set("drbot:plugin:a:hold", 1)
    job_id = drbot.say("/dr exercise a").job_id
    drbot.wait_status(job_id, "running")
    redis_server.stop()
    redis_server.start()  # AOF on: the data survives, the connections do not
    drbot.redis.set("drbot:plugin:a:go", 1)
    drbot.wait_status(job_id, "succeeded", timeout=30)
    drbot.wait_settled(job_id, timeout=30)
    assert "drill a finished" in drbot.frontend.replies(job_id)[-1]
    second = drbot.say("/dr exercise b").job_id  # the worker still takes new jobs
    drbot.wait_status(second, "succeeded", timeout=30)

"""Stopping drbot's processes the way systemd and Kubernetes do: SIGTERM, then SIGKILL after a
deadline. An idle worker exits at once; a busy one has its job checkpoint and exits; the scheduler
and the bot exit. Each test asserts that the process exited on its own (not killed at the deadline) and what
it left behind; how long it took is measured in bench/shutdown.py, not here."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import redis
from rq import Queue

from bot.worker.heartbeat import INTERRUPTED
from bot.worker.worker import DrbotWorker
from lab.fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.bot.harness import Harness
from tests.support import stop_process, wait_until

PROJECT = Path(__file__).resolve().parents[2]
# Far below rq's 60 s read of its command channel, which an unbounded stop used to wait out.
PROMPT = 20.0


def drbot_process(harness: Harness, command: str, **extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **harness.env, **extra, PYTHONPATH=str(PROJECT))
    return subprocess.Popen([sys.executable, "-m", "bot.cli", command], env=env,
                            start_new_session=True)


def idle_workers(client: redis.Redis) -> list[str]:
    """rq workers waiting for a job: registered, subscribed to their command channel and past
    installing their signal handlers (rq sets the state to idle only in its work loop)."""
    keys = [key.decode() for key in client.smembers("rq:workers")]
    return [key for key in keys if client.hget(key, "state") == b"idle"]


def test_the_command_channel_reader_stops_without_waiting_out_its_read(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    worker = DrbotWorker([Queue("drbot-test", connection=client)], connection=client)
    worker.subscribe()
    reader = worker.pubsub_thread
    wait_until(lambda: client.pubsub_numsub(worker.pubsub_channel_name)[0][1] == 1,
               what="the reader to subscribe")
    done = threading.Event()
    threading.Thread(target=lambda: (worker.unsubscribe(), done.set()), daemon=True).start()
    wait_until(done.is_set, PROMPT, "unsubscribe to return")
    assert not reader.is_alive()
    wait_until(lambda: client.pubsub_numsub(worker.pubsub_channel_name)[0][1] == 0,
               what="the subscription to end on the server")


def test_an_idle_worker_exits_on_sigterm_every_time(core_only: Harness) -> None:
    """rq's own stop hung for 60 s in about one stop in four; five in a row must all be prompt."""
    for _ in range(5):
        proc = drbot_process(core_only, "worker")
        wait_until(lambda: idle_workers(core_only.redis), 60, "the worker to wait for jobs")
        assert stop_process(proc, deadline=PROMPT), "the idle worker ignored SIGTERM"
        assert proc.returncode == 0
        assert core_only.redis.smembers("rq:workers") == set()  # it deregistered itself


def hold_drill_in_step_two(drbot: Harness, name: str = "a") -> str:
    drbot.redis.set(f"drbot:plugin:{name}:hold", 1)
    job_id = drbot.say(f"/dr exercise {name}").job_id
    assert job_id
    wait_until(lambda: drbot.redis.exists(f"drbot:plugin:{name}:in-two"), what="step two to start")
    return job_id


def test_a_busy_worker_checkpoints_its_job_exits_and_retry_resumes(drbot: Harness) -> None:
    job_id = hold_drill_in_step_two(drbot)
    assert drbot.stop_workers() == [True]
    job = drbot.wait_status(job_id, "failed")
    assert [s.status for s in job.steps] == ["done", "cancelled", "pending"]
    assert job.error == INTERRUPTED
    assert drbot.rt.locks.holders("drill:a") == {} and drbot.rt.locks.holders("cluster") == {}
    text = drbot.wait_reply(job_id, f"{INTERRUPTED} during step 'two'")
    assert "finished steps: one" in text and f"/dr retry {job_id}" in text

    drbot.start_worker()
    drbot.redis.set("drbot:plugin:a:go", 1)
    assert drbot.say(f"/dr retry {job_id}", who="carol").ok
    drbot.wait_status(job_id, "succeeded")
    assert drbot.redis.get("drbot:plugin:a:one") == b"1"  # the finished step was not run again
    assert drbot.redis.get("drbot:plugin:a:two") == b"2"


def test_a_busy_worker_whose_step_ignores_the_stop_still_exits(drbot: Harness) -> None:
    """The step never checks for cancellation: the heartbeat abandons it after the grace, the
    record says so, and the worker exits on its own."""
    drbot.redis.set("drbot:plugin:a:stubborn", 1)
    job_id = hold_drill_in_step_two(drbot)
    assert drbot.stop_workers() == [True]
    job = drbot.wait_status(job_id, "failed")
    assert job.error == INTERRUPTED
    drbot.wait_reply(job_id, "did not stop in time")
    assert drbot.rt.locks.holders("drill:a") == {}


def test_the_scheduler_exits_on_sigterm(core_only: Harness) -> None:
    proc = drbot_process(core_only, "scheduler")
    wait_until(lambda: core_only.rt.store.recent(), 60, "the scheduler's first backup check")
    assert stop_process(proc, deadline=PROMPT), "the scheduler ignored SIGTERM"
    assert proc.returncode == 0


def test_the_bot_exits_on_sigterm_and_closes_its_slack_socket(core_only: Harness) -> None:
    """`drbot bot` with Slack in Socket Mode: SIGTERM ends it with status 0 (a stop asked for,
    not a failure a supervisor must act on), and it closes its socket on the way out."""
    slack = FakeSlack().start()
    try:
        proc = drbot_process(core_only, "bot", DRBOT_SLACK_BOT_TOKEN=BOT_TOKEN,
                             DRBOT_SLACK_APP_TOKEN=APP_TOKEN, DRBOT_SLACK_API_URL=slack.api_url)
        wait_until(lambda: slack.sockets or proc.poll() is not None, 60,
                   "the bot's Socket Mode connection")
        assert proc.poll() is None, "the bot ended before it was asked to"
        assert stop_process(proc, deadline=PROMPT), "the bot ignored SIGTERM"
        assert proc.returncode == 0
        wait_until(lambda: not slack.sockets, 30, "the bot's socket to close")
    finally:
        slack.stop()

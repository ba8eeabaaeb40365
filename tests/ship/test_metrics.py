"""Metrics after real jobs: the bot's (commands, queue, approvals, relay lag) and the worker's
(job counts and durations, summed over the forked work horses)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.chat.health import Background, Health
from tests.bot.harness import Harness, wait_until
from tests.ship.http import get, sample


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def drbot(redis_url: str, tmp_path: Path) -> Iterator[tuple[Harness, str, str]]:
    worker_port = free_port()
    (tmp_path / "tmp").mkdir()  # where the worker's metrics folder goes (tempfile follows TMPDIR)
    harness = Harness(redis_url, tmp_path, DRBOT_HTTP_PORT=worker_port, DRBOT_HTTP_HOST="127.0.0.1",
                      TMPDIR=str(tmp_path / "tmp"))
    harness.start_worker()
    harness.start_relay()
    bot = Background(Health(harness.settings, harness.app.frontends, scrape_queue=True),
                     "127.0.0.1", 0).start()
    yield harness, f"http://127.0.0.1:{bot.port}/metrics", f"http://127.0.0.1:{worker_port}/metrics"
    bot.stop()
    harness.close()


def worker_metrics(url: str) -> str:
    return wait_until(lambda: (r := get(url))[0] == 200 and r[1], 20, "the worker's /metrics")


def test_metrics_after_a_job(drbot: tuple[Harness, str, str], tmp_path: Path) -> None:
    harness, bot_url, worker_url = drbot
    before = sample(get(bot_url)[1], "drbot_commands_total", command="exercise", outcome="ok") or 0
    reply = harness.say("/dr exercise m1")
    assert reply.job_id
    harness.wait_status(reply.job_id, "succeeded")
    harness.wait_settled(reply.job_id)

    bot = get(bot_url)[1]
    assert sample(bot, "drbot_commands_total", command="exercise", outcome="ok") == before + 1
    assert sample(bot, "drbot_queue_depth") == 0.0
    assert (sample(bot, "drbot_relay_lag_seconds_count") or 0) >= 1

    worker = worker_metrics(worker_url)
    assert sample(worker, "drbot_jobs_total", command="exercise", status="succeeded") == 1.0
    assert sample(worker, "drbot_job_duration_seconds_count", command="exercise") == 1.0
    assert sample(worker, "drbot_queue_depth") is None, "only the bot reports the queue depth"

    again = harness.say("/dr exercise m2").job_id
    assert again
    harness.wait_status(again, "succeeded")
    worker = worker_metrics(worker_url)
    assert sample(worker, "drbot_jobs_total", command="exercise", status="succeeded") == 2.0
    # the horses of one worker share one file per metric type (bot/cli.py _metrics_dir): the
    # folder does not grow by a set of files per job
    [folder] = (tmp_path / "tmp").glob("drbot-metrics-*")
    horse_files = sorted(f.name.split("_", 1)[0] for f in folder.glob("*-horse.db"))
    assert horse_files == ["counter", "gauge", "histogram"]
    assert len(list(folder.iterdir())) <= 2 * len(horse_files)  # and the worker's own

    harness.say("/dr nonsense")
    assert (sample(get(bot_url)[1], "drbot_commands_total", command="unknown", outcome="refused")
            or 0) >= 1


def test_approvals_pending_and_queue_depth_are_read_on_scrape(
        drbot: tuple[Harness, str, str]) -> None:
    harness, bot_url, _ = drbot
    reply = harness.say("/dr exercise-gated g1")
    assert reply.job_id
    harness.wait_status(reply.job_id, "awaiting_approval")
    assert sample(get(bot_url)[1], "drbot_approvals_pending") == 1.0
    harness.kill_workers()
    harness.say("/dr approve " + reply.job_id, who="bob")
    wait_until(lambda: sample(get(bot_url)[1], "drbot_queue_depth") == 1.0, 10,
               "the approved job waiting in the queue with no worker")
    assert sample(get(bot_url)[1], "drbot_approvals_pending") == 0.0

"""JSON logs: every line written while a job runs carries its id and the requesting person."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from bot import logs
from tests.bot.harness import POLICY, Harness

ROOT = Path(__file__).parents[2]


def policy_with_chatty() -> str:
    return POLICY.replace("lab: true", "  chatty: {allow: [operator, admin]}\nlab: true")


def test_every_line_of_a_job_names_the_job_and_the_person(redis_url: str, tmp_path: Path) -> None:
    harness = Harness(redis_url, tmp_path, policy_text=policy_with_chatty(),
                      DRBOT_PLUGINS='["tests.ship.chatty"]')
    try:
        reply = harness.say("/dr chatty", who="carol")
        assert reply.job_id, reply.text
        env = {**os.environ, **harness.env, "DRBOT_LOG_JSON": "true", "DRBOT_LOG_LEVEL": "INFO",
               "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "bot.cli", "worker", "--burst"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert harness.job(reply.job_id).status == "succeeded"
    finally:
        harness.close()
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    ours = [e for e in lines if e["logger"].startswith(("drbot.handlers", "adapters."))]
    assert [e["message"] for e in ours] == [
        "planning", "step first runs", "an adapter speaks during first", "step second runs",
        "an adapter speaks during second"]
    for entry in ours:
        assert (entry["job_id"], entry["person"]) == (reply.job_id, "carol"), entry


def test_context_ends_with_the_job(caplog: object) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    with logs.job_context("0123abcd"):
        logs.bind_person("alice")
        inside = logging.makeLogRecord(record.__dict__)
        logs.JobContextFilter().filter(inside)
    after = logging.makeLogRecord(record.__dict__)
    logs.JobContextFilter().filter(after)
    assert (inside.job_id, inside.person) == ("0123abcd", "alice")  # type: ignore[attr-defined]
    assert not hasattr(after, "job_id") and not hasattr(after, "person")
    text = logs.PlainFormatter("%(message)s").format(inside)
    assert text == "m [job_id=0123abcd person=alice]"

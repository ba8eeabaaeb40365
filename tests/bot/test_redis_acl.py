"""Separate Redis ACL users for the bot, the worker and the scheduler, with the rules
deploy/compose.yaml gives them, against a real redis-server: drbot runs a job end to end with
them, and none of them may run MONITOR, CONFIG, FLUSH*, DEBUG or touch keys outside drbot's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lab.fakes.redis import RedisServer
from tests.bot.harness import Harness
from tests.support import free_port

COMPOSE = Path(__file__).parents[2] / "deploy" / "compose.yaml"
USERS = ("bot", "worker", "scheduler")


def shipped_rules() -> dict[str, str]:
    """Each user's rules as deploy/compose.yaml writes them into redis.conf (password aside)."""
    text = COMPOSE.read_text()
    found = dict(re.findall(r"user (bot|worker|scheduler) on >%s (.+?)\\n", text))
    assert set(found) == set(USERS), "compose.yaml must define the bot, worker, scheduler users"
    return found


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[int]:
    rules = shipped_rules()
    conf = tmp_path / "redis.conf"
    conf.write_text("\n".join([
        "enable-debug-command yes",  # so that only the ACL can refuse DEBUG
        "user default off",
        "user admin on >admin-pw ~* &* +@all",  # the test's own view, to look and to clean
        # the drill runbook (a test plugin) keeps its state under drill:*, beside drbot's
        *(f"user {u} on >{u}-pw {rules[u]} ~drill:*" for u in USERS)]) + "\n")
    server = RedisServer(free_port(), tmp_path, config=conf, args=["--appendonly", "no"],
                         probe={"username": "admin", "password": "admin-pw"})
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


def url(port: int, user: str) -> str:
    return f"redis://{user}:{user}-pw@127.0.0.1:{port}/0"


def test_bot_and_worker_run_a_job_each_as_its_own_user(acl_redis: int, tmp_path: Path) -> None:
    h = Harness(url(acl_redis, "bot"), tmp_path, DRBOT_REDIS_ALLOW_NO_PASSWORD="false")
    try:
        h.env["REDIS_URL"] = url(acl_redis, "worker")
        h.start_worker()
        h.env["REDIS_URL"] = url(acl_redis, "bot")
        h.start_relay()
        job_id = h.say("/dr drill acl").job_id
        h.wait_status(job_id, "succeeded")
        h.wait_reply(job_id, "drill acl finished")
    finally:
        h.close()


@pytest.mark.parametrize("user", USERS)
def test_no_user_may_monitor_configure_flush_debug_or_reach_other_keys(acl_redis: int,
                                                                      user: str) -> None:
    client = redis.Redis.from_url(url(acl_redis, user))
    client.set("drbot:probe", "1")  # its own keys: yes
    for command in (("MONITOR",), ("CONFIG", "GET", "*"), ("FLUSHALL",), ("FLUSHDB",),
                    ("DEBUG", "SLEEP", "0"), ("ACL", "LIST"), ("SET", "other:key", "1"),
                    ("SHUTDOWN",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)

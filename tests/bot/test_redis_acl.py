"""Separate Redis ACL users for the bot, the worker and the scheduler, with the rules
deploy/compose.yaml and the Helm chart's bundled Redis give them (the same rules: a test says
so), against a real redis-server: drbot runs a job end to end with them, and none of them may run
MONITOR, CONFIG, FLUSH*, DEBUG or touch keys outside drbot's. For the chart, redis.conf is the
one its init container writes from the rendered chart and the Secret's keys."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.config.settings import Settings
from bot.runtime import Runtime
from bot.watch.scheduler import Scheduler
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
        job_id = h.say("/dr exercise acl").job_id
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


# -- the Helm chart's bundled Redis ---------------------------------------------------------------

CHART_USERS = Path(__file__).parents[2] / "helm" / "drbot" / "files" / "redis-users.acl"


def chart_rules() -> dict[str, str]:
    """Each user's rules as the chart's users file gives them."""
    lines = [ln.split(None, 1) for ln in CHART_USERS.read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    return {user: rules.strip() for user, rules in lines}


def test_the_chart_and_compose_give_the_same_users_the_same_rules() -> None:
    assert chart_rules() == shipped_rules()


def rendered_redis_conf(tmp_path: Path, passwords: dict[str, str]) -> Path:
    """redis.conf as the chart's bundled Redis writes it: the chart rendered the way
    tests/ship/chart.py does, its init container's script run with the Secret's keys and the
    users ConfigMap as files (the paths its env names, moved under tmp_path)."""
    from tests.ship.chart import find, manifests

    docs = manifests()
    pod = find(docs, "StatefulSet", "-redis")["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    secret = next(v["secret"] for v in pod["volumes"] if v["name"] == "password")
    (secrets := tmp_path / "secret").mkdir()
    for item in secret["items"]:  # each key of the Secret under the file name the chart gives it
        (secrets / item["path"]).write_text(passwords[item["key"]] + "\n")
    (users := tmp_path / "users").mkdir()
    (users / "users.acl").write_text(find(docs, "ConfigMap", "-redis-users")["data"]["users.acl"])
    (config := tmp_path / "config").mkdir()
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env == {"SECRET_DIR": "/secret", "USERS_FILE": "/users/users.acl",
                   "CONFIG_DIR": "/config"}
    subprocess.run([*init["command"], init["args"][0]], check=True, env={
        "PATH": "/usr/bin:/bin", "SECRET_DIR": str(secrets),
        "USERS_FILE": str(users / "users.acl"), "CONFIG_DIR": str(config)})
    conf = config / "redis.conf"
    # the pod's data volume is mounted at /data; redis-server checks that the folder exists
    conf.write_text(conf.read_text().replace("dir /data\n", f"dir {tmp_path}\n"))
    return conf


CHART_PASSWORDS = {"redis-password": "admin-pw", "redis-bot": "bot-pw-1",
                   "redis-worker": "worker-pw-2", "redis-scheduler": "scheduler-pw-3"}


@pytest.fixture
def chart_redis(tmp_path: Path) -> Iterator[RedisServer]:
    conf = rendered_redis_conf(tmp_path, CHART_PASSWORDS)
    server = RedisServer(free_port(), tmp_path, config=conf, args=[
        "--appendonly", "no", "--enable-debug-command", "yes"],  # only the ACL may refuse DEBUG
        probe={"password": "admin-pw"})
    server.start()
    admin = redis.Redis(port=server.port, password="admin-pw")
    for user in USERS:  # the drill runbook (a test plugin) keeps its state under drill:*
        admin.execute_command("ACL", "SETUSER", user, "~drill:*")
    try:
        yield server
    finally:
        server.stop()


def chart_env(tmp_path: Path, server: RedisServer, process: str) -> dict[str, str]:
    """REDIS_URL as the chart gives ``process`` (its own user), pointed at the test's server, and
    the password file it mounts: only its own key of the Secret."""
    from tests.ship.chart import find, manifests

    pod = find(manifests(), "Deployment", f"-{process}")["spec"]["template"]["spec"]
    url = next(e["value"] for e in pod["containers"][0]["env"] if e["name"] == "REDIS_URL")
    items = next(v["secret"]["items"] for v in pod["volumes"] if v["name"] == "redis-password")
    assert [i["path"] for i in items] == ["password"]
    (own := tmp_path / f"{process}-password").write_text(CHART_PASSWORDS[items[0]["key"]])
    return {"REDIS_URL": url.replace("drbot-redis.drbot.svc:6379", f"127.0.0.1:{server.port}"),
            "DRBOT_REDIS_PASSWORD_FILE": str(own)}


def test_the_charts_users_each_do_their_job(chart_redis: RedisServer, tmp_path: Path) -> None:
    bot, worker, scheduler = (chart_env(tmp_path, chart_redis, p) for p in USERS)
    assert bot["REDIS_URL"].startswith("redis://bot@")
    h = Harness(f"redis://bot:bot-pw-1@127.0.0.1:{chart_redis.port}/0", tmp_path,
                DRBOT_REDIS_ALLOW_NO_PASSWORD="false", **bot)
    try:
        h.env.update(worker)
        h.start_worker()
        h.env.update(bot)
        h.start_relay()
        job_id = h.say("/dr exercise chart").job_id
        h.wait_status(job_id, "succeeded")
        h.wait_reply(job_id, "drill chart finished")
        os.environ.update(scheduler)  # the scheduler's own runtime, as its pod starts it
        try:
            rt = Runtime.from_settings(Settings(), patient=False)
        finally:
            os.environ.update(bot)
        assert rt.client.acl_whoami() == "scheduler"
        scheduled = Scheduler(rt, interval=60).tick(time.time())
        assert scheduled  # its signed record and queue entry were written as that user
        # the worker, as its own user, takes the scheduler's job (the check itself needs a
        # cluster the test has not got, so it may end either way; it is not left waiting)
        done = h.wait_status(scheduled, "succeeded", "failed")
        assert "NOPERM" not in (done.error or ""), done.error
    finally:
        h.close()


@pytest.mark.parametrize("user", USERS)
def test_the_charts_users_may_not_monitor_configure_flush_debug_or_reach_other_keys(
        chart_redis: RedisServer, user: str) -> None:
    client = redis.Redis(port=chart_redis.port, username=user,
                         password=CHART_PASSWORDS[f"redis-{user}"])
    client.set("drbot:probe", "1")
    for command in (("MONITOR",), ("CONFIG", "GET", "*"), ("FLUSHALL",), ("FLUSHDB",),
                    ("DEBUG", "SLEEP", "0"), ("ACL", "LIST"), ("SET", "other:key", "1"),
                    ("KEYS", "*"), ("SHUTDOWN",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    if user == "scheduler":  # it has no use for pub/sub: it cannot stop a job
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.publish("rq:pubsub:worker", "{}")
    with pytest.raises(redis.AuthenticationError):  # another process's password is not its own
        redis.Redis(port=chart_redis.port, username=user,
                    password=CHART_PASSWORDS["redis-bot" if user != "bot" else "redis-worker"]
                    ).ping()


def test_the_charts_redis_refuses_to_start_without_a_users_password(tmp_path: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError):  # the pod stops before Redis starts
        rendered_redis_conf(tmp_path, {**CHART_PASSWORDS, "redis-worker": ""})
    assert "user worker" not in (tmp_path / "config" / "redis.conf").read_text()

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
from bot.watch.scheduler import WatchScheduler
from lab import Lab
from lab.fakes.redis import RedisServer
from lab.servers import free_port
from tests.bot.harness import Harness
from tests.e2e.conftest import lab  # noqa: F401  (fixture)
from tests.support import wait_until

COMPOSE = Path(__file__).parents[2] / "deploy" / "compose.yaml"
USERS = ("bot", "worker", "scheduler")


def shipped_rules() -> dict[str, str]:
    """Each user's rules as deploy/compose.yaml writes them into redis.conf (password aside)."""
    text = COMPOSE.read_text()
    found = dict(re.findall(r"user (bot|worker|scheduler) on >%s (.+?)\\n", text))
    assert set(found) == set(USERS), "compose.yaml must define the bot, worker, scheduler users"
    # printf's format: "%%" writes one "%" (the key selectors %R~ are written %%R~ there)
    return {user: rules.replace("%%", "%") for user, rules in found.items()}


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[int]:
    rules = shipped_rules()
    conf = tmp_path / "redis.conf"
    conf.write_text("\n".join([
        "enable-debug-command yes",  # so that only the ACL can refuse DEBUG
        "user default off",
        "user admin on >admin-pw ~* &* +@all",  # the test's own view, to look and to clean
        *(f"user {u} on >{u}-pw {rules[u]}" for u in USERS)]) + "\n")
    server = RedisServer(free_port(), tmp_path, config=conf, args=["--appendonly", "no"],
                         probe={"username": "admin", "password": "admin-pw"})
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


def url(port: int, user: str) -> str:
    return f"redis://{user}:{user}-pw@127.0.0.1:{port}/0"


def admin_of(port: int) -> redis.Redis:
    return redis.Redis(port=port, username="admin", password="admin-pw")


def refusals(admin: redis.Redis) -> list[str]:
    """What Redis refused anyone since the server started, as "<user> <object>" (its ACL LOG):
    a normal flow must leave none, even where drbot only logs a failed write."""
    return [f"{e['username']} {e['object']}" for e in admin.acl_log()]


def as_users(port: int, tmp_path: Path) -> Harness:
    """The bot (core and relay) as the bot user, a worker as the worker user."""
    h = Harness(url(port, "bot"), tmp_path, DRBOT_REDIS_ALLOW_NO_PASSWORD="false")
    try:
        h.env["REDIS_URL"] = url(port, "worker")
        h.start_worker()
        h.env["REDIS_URL"] = url(port, "bot")
        h.start_relay()
    except BaseException:
        h.close()
        raise
    return h


def test_bot_and_worker_run_a_job_each_as_its_own_user(acl_redis: int, tmp_path: Path) -> None:
    h = as_users(acl_redis, tmp_path)
    try:
        job_id = h.say("/dr exercise acl").job_id
        h.wait_status(job_id, "succeeded")
        h.wait_reply(job_id, "drill acl finished")
        assert refusals(admin_of(acl_redis)) == []
    finally:
        h.close()


def test_a_running_job_is_cancelled_across_the_users(acl_redis: int, tmp_path: Path) -> None:
    """The bot asks (its cancel key), the worker's heartbeat sees it and stops the step; the
    relay tells the thread. Each side reads the other's keys and writes only its own."""
    admin = admin_of(acl_redis)
    h = as_users(acl_redis, tmp_path)
    try:
        admin.set("drbot:plugin:c:hold", 1)  # step two waits for go, which never comes
        job_id = h.say("/dr exercise c").job_id
        wait_until(lambda: admin.exists("drbot:plugin:c:in-two"), what="step two to start")
        assert "stopping (step two)" in h.say(f"/dr cancel {job_id}").text
        job = h.wait_status(job_id, "cancelled")
        assert [s.status for s in job.steps] == ["done", "cancelled", "pending"]
        h.wait_reply(job_id, "cancelled by alice during step 'two'")
        assert refusals(admin_of(acl_redis)) == []
    finally:
        h.close()


def test_the_scheduled_check_alerts_and_reports_through_the_users(lab: Lab, acl_redis: int,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    """The backup watch as deployed: the scheduler (its user) enqueues the check, the worker (its
    user) runs it against the lab and writes the watch's state and alerts, the bot (its user)
    posts the alerts; /dr backups then answers in a thread. Nobody was refused anything."""
    h = Harness(url(acl_redis, "bot"), tmp_path, DRBOT_REDIS_ALLOW_NO_PASSWORD="false",
                **{**lab.env, "DRBOT_POLICY": str(lab.policy_path), "DRBOT_PLUGINS": "[]"})
    try:
        h.env["REDIS_URL"] = url(acl_redis, "worker")
        h.start_worker()
        h.env["REDIS_URL"] = url(acl_redis, "bot")
        h.start_relay()
        os.environ["REDIS_URL"] = url(acl_redis, "scheduler")
        try:
            scheduler = Runtime.from_settings(Settings(), patient=False)
        finally:
            os.environ["REDIS_URL"] = url(acl_redis, "bot")
        assert scheduler.client.acl_whoami() == "scheduler"
        job_id = WatchScheduler(scheduler).tick(time.time())
        assert job_id
        h.wait_status(job_id, "succeeded", timeout=60)
        alerts = wait_until(lambda: len(h.frontend.alerts) >= 3 and h.frontend.alerts, 30,
                            "the seeded alerts in the alert channel")
        assert any("backup missed" in a and "apps/archive" in a for a in alerts)
        report = h.say("/dr backups").job_id
        h.wait_status(report, "succeeded", timeout=60)
        h.wait_reply(report, "Backups as of")
        assert refusals(admin_of(acl_redis)) == []
    finally:
        h.close()


# A key of a family each user writes (docs/security.md, "Redis ACL users").
OWN = {"bot": "drbot:rate:probe", "worker": "drbot:seen:probe", "scheduler": "drbot:request:probe"}

# For each user, writes (and reads) of families that are another process's alone: each refused.
REFUSED = {
    "bot": [("SET", "drbot:alive:j1", "1"),  # the worker's proof of life
            ("HSET", "drbot:pids:j1", "1", "{}"),  # the worker's subprocesses
            ("SET", "drbot:rqjob:j1", "x"),  # the worker's rq execution
            ("SADD", "drbot:seen:nodes", "n1"),  # the worker's listings for completion
            ("HSET", "drbot:watch:state", "k", "{}"),  # the backup check's state machine
            ("HSET", "drbot:verify:results", "k", "{}"),  # verification results
            ("HSET", "drbot:drill:results", "k", "{}"),  # drill results
            ("SET", "drbot:file:j1:ab", "x"),  # a job's file for its thread
            ("SADD", "rq:workers", "w"),  # rq's worker registry
            ("ZADD", "rq:wip:default", "1", "x"),  # rq's started-job registry
            ("SET", "drbot:plugin:a:go", "1"),  # runbook plugins' state
            ("GET", "drbot:plugin:a:go")],
    "worker": [("INCR", "drbot:rate:alice:1"),  # the bot's submission counters
               ("SET", "drbot:request:r1", "j1"),  # the bot's request dedupe
               ("SET", "drbot:delivery:slack:1", "1"),  # the bot's platform deliveries
               ("HSET", "drbot:relay:j1", "thread", "{}"),  # the relay's threads
               ("SET", "drbot:confirm:j1:2", "x"),  # a /dr confirm (the worker only reads it)
               ("SET", "drbot:cancel:j1", "mallory"),  # a /dr cancel (read only)
               ("ZADD", "drbot:jobs", "1", "j1"),  # the job history (jobs are created elsewhere)
               ("HSET", "drbot:watch:threads", "k", "{}"),  # alert delivery's threads
               ("GET", "drbot:rate:alice:1"),
               ("GET", "drbot:delivery:slack:1")],
    "scheduler": [("SADD", "rq:workers", "w"),  # rq's worker registry
                  ("ZADD", "rq:wip:default", "1", "x"),
                  ("SET", "drbot:lock:cluster", "x"),  # locks
                  ("SET", "drbot:alive:j1", "1"),
                  ("SET", "drbot:cancel:j1", "mallory"),
                  ("XADD", "drbot:events:j1", "*", "type", "done"),  # a job's events
                  ("XADD", "drbot:audit", "*", "action", "x"),  # the audit trail
                  ("XADD", "drbot:watch:alerts", "*", "type", "x"),  # alerts
                  ("HSET", "drbot:relay:j1", "thread", "{}"),
                  ("SET", "drbot:file:j1:ab", "x"),
                  ("INCR", "drbot:rate:alice:1"),
                  ("XRANGE", "drbot:audit", "-", "+"),  # and it reads none of those
                  ("GET", "drbot:cancel:j1")],
}


@pytest.mark.parametrize(("user", "command"),
                         [(u, c) for u, commands in REFUSED.items() for c in commands],
                         ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]))
def test_each_user_is_refused_the_families_that_are_not_its_own(acl_redis: int, user: str,
                                                                command: tuple[str, ...]) -> None:
    client = redis.Redis.from_url(url(acl_redis, user))
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.execute_command(*command)


def test_reading_what_another_process_writes_is_allowed_where_the_map_says(acl_redis: int) -> None:
    """Read-only families: the bot reads the worker's proof of life and listings, the worker
    reads the bot's cancel requests and confirmations; neither may write them."""
    bot = redis.Redis.from_url(url(acl_redis, "bot"))
    worker = redis.Redis.from_url(url(acl_redis, "worker"))
    worker.set("drbot:alive:j1", "1")
    assert bot.exists("drbot:alive:j1") == 1 and bot.get("drbot:alive:j1") == b"1"
    worker.set("drbot:file:j1:ab", "png")  # a job's file: the relay reads what the worker wrote
    assert bot.get("drbot:file:j1:ab") == b"png"
    bot.set("drbot:cancel:j1", "alice")
    assert worker.get("drbot:cancel:j1") == b"alice"
    for client, key in ((bot, "drbot:alive:j1"), (bot, "drbot:file:j1:ab"),
                        (worker, "drbot:cancel:j1")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.delete(key)


@pytest.mark.parametrize("user", USERS)
def test_no_user_may_monitor_configure_flush_debug_or_reach_other_keys(acl_redis: int,
                                                                      user: str) -> None:
    client = redis.Redis.from_url(url(acl_redis, user))
    client.set(OWN[user], "1")  # a key of a family it writes: yes
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
        scheduled = WatchScheduler(rt, interval=60).tick(time.time())
        assert scheduled  # its signed record and queue entry were written as that user
        # the worker, as its own user, takes the scheduler's job (the check itself needs a
        # cluster the test has not got, so it may end either way; it is not left waiting)
        done = h.wait_status(scheduled, "succeeded", "failed")
        assert "NOPERM" not in (done.error or ""), done.error
        assert refusals(redis.Redis(port=chart_redis.port, password="admin-pw")) == []
    finally:
        h.close()


@pytest.mark.parametrize("user", USERS)
def test_the_charts_users_may_not_monitor_configure_flush_debug_or_reach_other_keys(
        chart_redis: RedisServer, user: str) -> None:
    client = redis.Redis(port=chart_redis.port, username=user,
                         password=CHART_PASSWORDS[f"redis-{user}"])
    client.set(OWN[user], "1")
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

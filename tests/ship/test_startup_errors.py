"""Mistakes a new user makes, each found before it bites, in one line that says what to do, with
a non-zero exit status: `check-config`'s semantic checks ("did you mean"), bad settings, an
unreachable Redis at worker start, and `drbot bot` when Slack cannot be reached."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

KEY = "k" * 40


def drbot(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "LANG": "C.UTF-8",
            "DRBOT_LOG_JSON": "false"}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env={**base, **env},
                          capture_output=True, text=True, timeout=timeout, check=False)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write(path: Path, data: object) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


POLICY = {
    "people": {"alice": {"accounts": ["console:alice"], "roles": ["admin"]},
               "carol": {"accounts": ["console:carol"], "roles": ["operator"]}},
    "commands": {
        "status": {"allow": ["adimn", "operator"]},
        "rebuild-node": {"allow": ["admin"], "approvals": 1,
                         "approvers": ["person:alcie", "role:admins"]},
        "reconcle": {"allow": ["operator"]},
    },
}
INVENTORY = {"alerts": {"slak": "C0123"}, "backups": {"check_interval_seconds": 5}}


def test_check_config_names_every_semantic_mistake(tmp_path: Path) -> None:
    policy = write(tmp_path / "policy.yaml", POLICY)
    inventory = write(tmp_path / "inventory.yaml", INVENTORY)
    done = drbot("check-config", env={"DRBOT_POLICY": policy, "DRBOT_INVENTORY": inventory,
                                      "DRBOT_SIGNING_KEY": "short",
                                      "REDIS_URL": "redis://redis.lan:6379/0"})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "drbot: DRBOT_SIGNING_KEY is shorter than 32 characters; bot and worker refuse it: "
        "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`",
        "drbot: REDIS_URL has no password; bot, worker and scheduler refuse it: put one in the "
        "URL (redis://:PASSWORD@host:6379/0) or set DRBOT_REDIS_PASSWORD_FILE",
        f"drbot: {policy}: commands.rebuild-node.approvers: 'person:alcie' is not a person of "
        "people:; did you mean alice?",
        f"drbot: {policy}: commands.rebuild-node.approvers: 'role:admins': role 'admins' is held "
        "by nobody; did you mean admin?",
        f"drbot: {policy}: commands.rebuild-node: needs 1 approval(s) but no rule allows "
        "/dr approve: add `approve: {allow: [...]}` under commands",
        f"drbot: {policy}: commands.reconcle: no such command; did you mean reconcile?",
        f"drbot: {policy}: commands.status.allow: role 'adimn' is held by nobody; did you mean "
        "admin?",
        f"drbot: {inventory}: alerts.slak: not a frontend; did you mean slack? (use slack, "
        "discord, console)",
        f"drbot: {inventory}: backups.check_interval_seconds=5 must be between 10 and 86400; the "
        "scheduler refuses anything else",
    ]


def test_check_config_says_ok_when_all_is_well(tmp_path: Path) -> None:
    good = {"people": POLICY["people"],
            "commands": {"status": {"allow": ["admin", "operator"]},
                         "approve": {"allow": ["admin"]},
                         "rebuild-node": {"allow": ["admin"], "approvals": 1,
                                          "approvers": ["person:alice", "role:admin"]}}}
    policy = write(tmp_path / "policy.yaml", good)
    inventory = write(tmp_path / "inventory.yaml", {"alerts": {"slack": "C0123"}})
    done = drbot("check-config", env={"DRBOT_POLICY": policy, "DRBOT_INVENTORY": inventory,
                                      "DRBOT_SIGNING_KEY": KEY,
                                      "REDIS_URL": "redis://:pw@redis.lan:6379/0"})
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "ok: 2 people, 3 command rules, 0 nodes\n"


def test_bad_settings_are_one_line(tmp_path: Path) -> None:
    policy = write(tmp_path / "policy.yaml", {"commands": {}})
    done = drbot("check-config", env={"DRBOT_POLICY": policy, "DRBOT_HTTP_PORT": "abc"})
    assert done.returncode == 2
    assert done.stderr == ("drbot: configuration error: bad setting(s): DRBOT_HTTP_PORT=abc: "
                           "Input should be a valid integer, unable to parse string as an "
                           "integer; write a whole number\n")
    done = drbot("check-config", env={"DRBOT_POLICY": policy, "DRBOT_LOG_LEVEL": "verbose"})
    assert done.returncode == 2
    assert done.stderr == ("drbot: configuration error: bad setting(s): DRBOT_LOG_LEVEL=verbose: "
                           "use DEBUG, INFO, WARNING or ERROR\n")
    done = drbot("check-config", env={"DRBOT_POLICY": policy, "DRBOT_SIGNING_KEY": "x",
                                      "DRBOT_HEARTBEAT_SECONDS": "0"})
    assert done.returncode == 2
    assert done.stderr == ("drbot: configuration error: bad setting(s): "
                           "DRBOT_HEARTBEAT_SECONDS=0: Input should be greater than 0\n")


def test_worker_says_when_redis_cannot_be_reached(tmp_path: Path) -> None:
    policy = write(tmp_path / "policy.yaml", {"commands": {}})
    port = closed_port()
    done = drbot("worker", env={"DRBOT_POLICY": policy, "DRBOT_SIGNING_KEY": KEY,
                                "REDIS_URL": f"redis://:secret-pw@127.0.0.1:{port}/0"})
    assert done.returncode == 2
    assert done.stderr == (f"drbot: cannot reach Redis at redis://127.0.0.1:{port} (Error 111 "
                           f"connecting to 127.0.0.1:{port}. Connection refused.); start it, or "
                           "fix REDIS_URL (and its password)\n")
    assert "secret-pw" not in done.stderr


def test_bot_exits_non_zero_when_slack_cannot_be_reached(redis_url: str, tmp_path: Path) -> None:
    policy = write(tmp_path / "policy.yaml", {"commands": {}})
    port = closed_port()
    done = drbot("bot", env={"DRBOT_POLICY": policy, "DRBOT_SIGNING_KEY": KEY,
                             "REDIS_URL": redis_url, "DRBOT_REDIS_ALLOW_NO_PASSWORD": "true",
                             "DRBOT_SLACK_BOT_TOKEN": "xoxb-1", "DRBOT_SLACK_APP_TOKEN": "xapp-1",
                             "DRBOT_SLACK_API_URL": f"http://127.0.0.1:{port}/api/",
                             "DRBOT_LOG_LEVEL": "ERROR"})
    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    assert last == (f"drbot: the slack frontend stopped: cannot reach slack (Cannot connect to "
                    f"host 127.0.0.1:{port} ssl:default [Connect call failed ('127.0.0.1', "
                    f"{port})]); check this host's network path to the platform (DNS, firewall, "
                    "proxy)")

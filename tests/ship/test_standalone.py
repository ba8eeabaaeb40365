"""The standalone deployment: deploy/compose.yaml and the systemd units in deploy/systemd."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
UNITS = ROOT / "deploy" / "systemd"
# The host directory docs/deploy.md tells the operator to fill (relative to DRBOT_ETC).
LAYOUT = ["drbot.env", "policy.yaml", "inventory.yaml", "secrets/signing-key",
          "secrets/redis-password", "secrets/redis-bot", "secrets/redis-worker",
          "secrets/redis-scheduler", "secrets/chat/", "worker/"]


def compose(etc: Path) -> dict[str, Any]:
    text = COMPOSE.read_text().replace("${DRBOT_ETC:-/etc/drbot}", str(etc))
    assert "${" not in re.sub(r"\$\{DRBOT_(REDIS_)?IMAGE:[-?][^}]+\}", "", text), \
        "an unknown variable in compose.yaml"
    return yaml.safe_load(text)


def host_paths(doc: dict[str, Any]) -> set[str]:
    found = {s["file"] for s in doc["secrets"].values()}
    for service in doc["services"].values():
        found.update(service.get("env_file", []))
        found.update(v["source"] for v in service.get("volumes", [])
                     if isinstance(v, dict) and v.get("type") == "bind")
    return found


def test_compose_references_only_the_documented_files(tmp_path: Path) -> None:
    for entry in LAYOUT:
        path = tmp_path / entry
        if entry.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
    doc = compose(tmp_path)
    for path in host_paths(doc):
        assert Path(path).exists(), f"compose.yaml refers to {path}, which the layout lacks"
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for entry in LAYOUT:
        assert entry.rstrip("/") in docs, f"docs/deploy.md does not tell the operator about {entry}"


def test_compose_processes_secrets_and_redis(tmp_path: Path) -> None:
    doc = compose(tmp_path)
    services = doc["services"]
    assert set(services) == {"redis", "bot", "worker", "scheduler"}
    assert [services[n]["command"] for n in ("bot", "worker", "scheduler")] == [
        ["bot"], ["worker"], ["scheduler"]]
    mounts = {n: {v["target"] for v in services[n]["volumes"]} for n in ("bot", "worker", "scheduler")}
    assert "/run/secrets/chat" in mounts["bot"] and "/run/secrets/chat" not in mounts["worker"]
    assert "/etc/drbot/worker" in mounts["worker"]
    # what the worker saw survives its restarts (bot/worker/seen.py), in a volume of its own
    assert services["worker"]["environment"]["DRBOT_STATE_DIR"] == "/var/lib/drbot/worker"
    assert {"source": "worker-state", "target": "/var/lib/drbot/worker"}.items() <= next(
        v for v in services["worker"]["volumes"] if v["target"] == "/var/lib/drbot/worker").items()
    assert not ({"/run/secrets/chat", "/etc/drbot/worker"} & mounts["scheduler"])
    for name in ("bot", "worker", "scheduler"):
        service = services[name]
        assert service["read_only"] and service["cap_drop"] == ["ALL"] and service["user"] == "10001:10001"
        # each process its own Redis user and password; the admin password stays with Redis
        assert set(service["secrets"]) == {"signing-key", f"redis-{name}"}
        assert service["environment"]["REDIS_URL"] == f"redis://{name}@redis:6379/0"
        assert service["environment"]["DRBOT_REDIS_PASSWORD_FILE"] == f"/run/secrets/redis-{name}"
        assert service["environment"]["DRBOT_SIGNING_KEY_FILE"] == "/run/secrets/signing-key"
        assert not any("TOKEN=" in str(v) or k.endswith(("_TOKEN", "_KEY", "_PASSWORD"))
                       for k, v in service["environment"].items()), "a secret as a value"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    script = " ".join(services["redis"]["command"])
    assert "appendonly yes" in script and "requirepass" in script and "ports" not in services["redis"]
    assert services["bot"]["ports"] == ["127.0.0.1:8080:8080"]


def units() -> dict[str, configparser.ConfigParser]:
    parsed = {}
    for path in sorted(UNITS.glob("*.service")):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(re.sub(r"^(\w+)=", r"\1 =", path.read_text(), flags=re.M))
        parsed[path.name] = parser
    return parsed


def test_units_for_every_process_with_credentials_as_files() -> None:
    found = units()
    assert set(found) == {"drbot-bot.service", "drbot-worker@.service", "drbot-scheduler.service",
                          "drbot-redis.service"}
    for name, command in (("drbot-bot.service", "bot"), ("drbot-worker@.service", "worker"),
                          ("drbot-scheduler.service", "scheduler")):
        text = (UNITS / name).read_text()
        assert f"ExecStart=/opt/drbot/bin/drbot {command}\n" in text
        assert "Environment=DRBOT_SIGNING_KEY_FILE=%d/signing-key" in text
        assert "LoadCredential=signing-key:/etc/drbot/secrets/signing-key" in text
        assert ("slack-bot-token" in text) == (command == "bot"), "chat tokens: bot only"
        assert ("InaccessiblePaths=-/etc/drbot/worker" in text) == (command != "worker")
        assert "NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text
        assert found[name]["Unit"]["Requires"] == "drbot-redis.service"
    worker = (UNITS / "drbot-worker@.service").read_text()
    assert "Environment=DRBOT_STATE_DIR=/var/lib/drbot/worker" in worker
    assert "StateDirectory=drbot" in worker  # systemd creates /var/lib/drbot for the worker
    redis = found["drbot-redis.service"]["Service"]["ExecStart"]
    assert redis.startswith("/usr/bin/redis-server /etc/drbot/redis.conf")
    assert "appendonly yes" in (UNITS / "drbot-redis.service").read_text()


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the parser test above still checks the units)")
    launcher = tmp_path / "drbot"  # stands in for /opt/drbot/bin/drbot, which is not installed here
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} -m bot.cli \"$@\"\n")
    launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
    for path in UNITS.glob("*.service"):
        text = path.read_text().replace("/opt/drbot/bin/drbot", str(launcher))
        if shutil.which("redis-server") != "/usr/bin/redis-server":
            text = text.replace("/usr/bin/redis-server", shutil.which("redis-server") or "/bin/true")
        (tmp_path / path.name).write_text(text)
    names = ["drbot-bot.service", "drbot-scheduler.service", "drbot-redis.service",
             "drbot-worker@1.service"]
    done = subprocess.run([analyze, "verify", *[str(tmp_path / n) for n in names]],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if "drbot" in line and "/etc/drbot" not in line.split(":", 1)[0]]
    assert done.returncode == 0 and problems == [], done.stdout + done.stderr

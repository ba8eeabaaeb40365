"""/healthz, /readyz and /metrics against a real Redis that goes down and comes back."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.chat.health import Background, Health, approvals_pending
from bot.config.settings import Settings
from bot.errors import ConfigError
from lab.fakes.redis import RedisServer
from tests.bot.harness import KEY, POLICY, RecordingFrontend, wait_until
from tests.ship.http import get, get_json, sample


@pytest.fixture
def settings(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    for name, value in {"REDIS_URL": redis_url, "DRBOT_SIGNING_KEY": KEY,
                        "DRBOT_POLICY": str(policy), "DRBOT_PLUGINS": '["tests.bot.drill"]'}.items():
        monkeypatch.setenv(name, value)
    return Settings()


@pytest.fixture
def frontend() -> RecordingFrontend:
    return RecordingFrontend()


@pytest.fixture
def server(settings: Settings, frontend: RecordingFrontend) -> Iterator[str]:
    background = Background(Health(settings, {"console": frontend}, scrape_queue=True),
                            "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{background.port}"
    background.stop()


def test_ready_follows_redis_and_liveness_does_not(server: str, redis_server: RedisServer) -> None:
    assert get_json(server + "/healthz") == (200, {"alive": True})
    assert get_json(server + "/readyz") == (200, {"ready": True, "checks": {
        "redis": "ok", "frontend:console": "connected"}})
    redis_server.stop()
    status, body = get_json(server + "/readyz")
    assert status == 503 and body["ready"] is False
    assert body["checks"]["redis"].startswith("unreachable")
    assert get_json(server + "/healthz")[0] == 200, "liveness must not depend on Redis"
    metrics = get(server + "/metrics")
    assert metrics[0] == 200 and math.isnan(sample(metrics[1], "drbot_queue_depth") or 0.0)
    redis_server.start()
    wait_until(lambda: get(server + "/readyz")[0] == 200, 10, "ready again after Redis is back")
    assert sample(get(server + "/metrics")[1], "drbot_queue_depth") == 0.0


def test_ready_needs_every_frontend_connected(server: str, frontend: RecordingFrontend) -> None:
    frontend.connected = False
    status, body = get_json(server + "/readyz")
    assert status == 503
    assert body["checks"] == {"redis": "ok", "frontend:console": "disconnected"}
    frontend.connected = True
    assert get(server + "/readyz")[0] == 200


def test_unknown_path_is_404(server: str) -> None:
    assert get(server + "/admin")[0] == 404


def test_busy_port_is_a_clear_configuration_error(settings: Settings, server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match=f"DRBOT_HTTP_PORT={port}: cannot listen"):
        Background(Health(settings), "127.0.0.1", port).start()


def test_approvals_pending_skips_forged_records(settings: Settings, redis_server: RedisServer) -> None:
    health = Health(settings)
    client = redis_server.client()
    client.sadd("drbot:jobs:active", "deadbeef")
    client.set("drbot:job:deadbeef", b'{"forged": true}')
    assert approvals_pending(health.rt.store) == 0

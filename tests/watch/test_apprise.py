"""Alerts beyond chat: Apprise URLs get the same alert, reminder and recovery as the chat channel.

The receiver speaks ntfy's JSON publish form (https://docs.ntfy.sh/publish/#publish-as-json), which
Apprise's real ntfy plugin posts; a second destination accepts connections and never answers, and
must hold back neither chat nor the first.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config.inventory import Inventory
from bot.watch.alert_states import EVENTS, AlertEvent
from bot.watch.notify import CURSOR, OUTBOUND
from tests.bot.harness import Harness
from tests.support import wait_until

TOKEN = "tk_s3cr3t/with+odd=chars"


class Ntfy(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any], str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append((self.path, json.loads(body),
                                    self.headers.get("Authorization", "")))
                reply = json.dumps({"id": str(len(outer.posts)), "event": "message"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass
        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def ntfy() -> Iterator[Ntfy]:
    server = Ntfy()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent() -> Iterator[int]:
    """Accepts connections (the kernel's backlog) and never answers: a server that hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def harness(redis_url: str, tmp_path: Path, ntfy: Ntfy, silent: int) -> Iterator[Harness]:
    token = tmp_path / "ntfy-token"
    token.write_text(TOKEN + "\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"alerts": {"console": "lab-alerts", "apprise": [
        {"name": "stuck", "url": f"ntfy://127.0.0.1:{silent}/drbot?rto=60"},
        {"name": "phone", "url": f"ntfy://127.0.0.1:{ntfy.server_port}/drbot-alerts"
                                 "?token={token}", "secrets": {"token": str(token)}}]}}))
    h = Harness(redis_url, tmp_path, DRBOT_INVENTORY=str(inventory))
    h.start_relay()
    yield h
    h.close()


def test_alert_reminder_and_recovery_reach_the_phone_and_chat_despite_a_hung_one(
        harness: Harness, ntfy: Ntfy) -> None:
    for kind, text in (("missed", "⚠ backup missed: volume apps/web-data"),
                       ("reminder", "still missed after 1d 0h: volume apps/web-data"),
                       ("recovered", "recovered: volume apps/web-data")):
        harness.redis.xadd(EVENTS, AlertEvent("a1", kind, text).sealed(harness.rt.signer))
    wait_until(lambda: len(ntfy.posts) == 3, what="three posts to the ntfy receiver")
    assert [(p[0], p[1]["topic"], p[1]["title"]) for p in ntfy.posts] == [
        ("/", "drbot-alerts", "drbot: backup missed"),
        ("/", "drbot-alerts", "drbot: still failing"),
        ("/", "drbot-alerts", "drbot: recovered")]
    assert ntfy.posts[0][1]["message"] == "⚠ backup missed: volume apps/web-data"
    assert {p[2] for p in ntfy.posts} == {f"Bearer {TOKEN}"}  # the secret, from its file
    wait_until(lambda: len(harness.frontend.alerts) == 3, what="the chat channel's three posts")
    assert harness.redis.get(CURSOR + OUTBOUND + "stuck") is None  # still waiting, not skipped


def test_a_refused_alert_keeps_its_place_for_the_next_round(
        harness: Harness, ntfy: Ntfy, caplog: pytest.LogCaptureFixture) -> None:
    ntfy.shutdown()
    ntfy.server_close()  # nothing listens on the port any more: refused at once
    caplog.set_level(logging.WARNING, logger="drbot.watch")
    harness.redis.xadd(EVENTS,
                      AlertEvent("a2", "missed", "⚠ backup missed: x").sealed(harness.rt.signer))
    wait_until(lambda: harness.frontend.alerts, what="the chat post")
    wait_until(lambda: sum("alert to phone was not accepted; will retry" in r.getMessage()
                           for r in caplog.records) >= 2, what="two refused attempts")
    assert harness.redis.get(CURSOR + OUTBOUND + "phone") is None
    assert TOKEN not in caplog.text


def test_placeholders_and_secret_files_must_match() -> None:
    with pytest.raises(ValueError, match=r"placeholders \(token\) must be exactly the secrets"):
        Inventory.model_validate({"alerts": {"apprise": [
            {"name": "phone", "url": "ntfy://h/t?token={token}"}]}})
    parsed = Inventory.model_validate({"alerts": {"slack": "C1", "apprise": [
        {"name": "mail", "url": "mailtos://u:{pw}@mail.example", "secrets": {"pw": "/run/pw"}}]}})
    assert parsed.alerts.channels == {"slack": "C1"} and parsed.alerts.apprise[0].name == "mail"
    with pytest.raises(ValueError, match="alerts.slack"):
        Inventory.model_validate({"alerts": {"slack": ["not", "a", "channel"]}})

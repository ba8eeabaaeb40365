"""The doctor's daily run alerts through the watch's alert stream: once when a line turns red,
reminders at the watch's cadence, once when it is green again, in the same thread."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from bot.doctor import red_alerts
from bot.doctor.result import Line, Status, System, fail, ok
from bot.records.signing import Signer
from bot.watch import notify
from lab.fakes.frontend import KEY
from tests.watch.test_delivery import AlertFrontend

HOUR = 3600.0
SIGNER = Signer(KEY.encode())
T0 = 1_800_000_000.0
TOKEN_RED = fail(System.PROXMOX, "token drbot@pve!drbot", "401 authentication failure",
                 "check proxmox.token_file")
TOKEN_OK = ok(System.PROXMOX, "token drbot@pve!drbot", "valid, TLS verified")


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    conn.delete(red_alerts.STATE, red_alerts.EVENTS, notify.CURSOR + "slack", notify.THREADS)
    yield conn
    conn.close()


def test_red_alerts_once_reminds_and_recovers_in_its_thread(client: redis.Redis) -> None:
    opened = red_alerts.record(client, [TOKEN_RED], T0, reminder_hours=12, signer=SIGNER)
    assert [e.type for e in opened] == ["red"]
    assert opened[0].text.startswith("✗ drbot doctor: proxmox token drbot@pve!drbot: 401 ")
    assert "\n  fix: check proxmox.token_file" in opened[0].text
    assert red_alerts.record(client, [TOKEN_RED], T0 + HOUR * 11, reminder_hours=12, signer=SIGNER) == []
    (again,) = red_alerts.record(client, [TOKEN_RED], T0 + HOUR * 12, reminder_hours=12, signer=SIGNER)
    assert again.type == "reminder" and again.text.startswith("still red after 12h")
    assert again.alert == opened[0].alert
    (back,) = red_alerts.record(client, [TOKEN_OK], T0 + HOUR * 24, reminder_hours=12, signer=SIGNER)
    assert back.type == "recovered" and back.alert == opened[0].alert
    assert "green again after 1d 0h" in back.text
    assert client.hgetall(red_alerts.STATE) == {}
    assert red_alerts.record(client, [TOKEN_OK], T0 + HOUR * 48, reminder_hours=12, signer=SIGNER) == []

    slack = AlertFrontend("slack")
    assert notify.deliver(client, {"slack": slack}, {"slack": "C1"}, asyncio.run, SIGNER) == 3
    assert [thread for _, _, thread in slack.posts] == [None, {"ts": "slack-1"},
                                                         {"ts": "slack-1"}]


def test_a_line_that_was_not_checked_keeps_its_alert_open(client: redis.Redis) -> None:
    """With a bad token the privileges are not read: their alert neither repeats nor closes."""
    privileges = fail(System.PROXMOX, "privileges", "lacks VM.Allocate on /vms/101", "grant it")
    red_alerts.record(client, [TOKEN_OK, privileges], T0, reminder_hours=12, signer=SIGNER)
    assert red_alerts.record(client, [TOKEN_RED], T0 + HOUR, reminder_hours=12,
                             signer=SIGNER)[0].type == "red"
    assert set(client.hgetall(red_alerts.STATE)) == {privileges.key.encode(), TOKEN_RED.key.encode()}
    skipped = Line(System.PROXMOX, "privileges", Status.SKIP, "not checked")
    assert red_alerts.record(client, [TOKEN_RED, skipped], T0 + HOUR * 2, reminder_hours=12,
                             signer=SIGNER) == []
    (closed,) = red_alerts.record(client, [TOKEN_RED, ok(System.PROXMOX, "privileges", "all held")],
                                  T0 + HOUR * 3, reminder_hours=12, signer=SIGNER)
    assert closed.type == "recovered" and "privileges is green again after 3h" in closed.text

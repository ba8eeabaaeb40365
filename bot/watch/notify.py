"""The bot side of the alerts: post the watch's alert events to every frontend's alert channel.

The events come from a Redis stream (alerts.EVENTS). Each frontend keeps its own cursor in Redis,
so a restart resumes where it stopped and a frontend that is down does not hold the others back.
The first event of an alert opens a message whose reference is kept in Redis; its reminders and
its recovery are posted in that thread. Delivery is at least once, like the relay's: an event
may repeat only if the bot died between posting it and moving the cursor.

Only an event its writer signed (alerts.AlertEvent.sealed) is posted, within KEEP_SECONDS of its
signing, and once per destination: the ids of the events posted are kept per destination in
Redis (and in the process, which a Redis writer cannot reach), so a real event written again is a
replay. An unsigned, forged, stale or replayed entry is dropped and audited, never posted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from bot.chat.frontends.base import Frontend, ThreadRef
from bot.config.inventory import PLACEHOLDER, AlertUrl
from bot.errors import RecordForged
from bot.records import files
from bot.records.audit import Audit
from bot.records.events import ENTRY_ID
from bot.records.signing import Signer
from bot.watch.alert_states import EVENTS, KEEP_SECONDS, AlertEvent

CURSOR = "drbot:watch:notify:"  # + frontend name: the last event id delivered there
THREADS = "drbot:watch:threads"  # hash: "<frontend>:<alert id>" -> JSON thread reference
POSTED = "drbot:watch:posted:"  # + destination: sorted set of event ids posted there, by signing
OPENERS = frozenset({"missed", "blind", "red"})  # "red": bot.doctor.red_alerts
BATCH = 50
log = logging.getLogger("drbot.watch")


class Posted:
    """The ids of the events posted to one destination within KEEP_SECONDS: in Redis, so that a
    restarted bot knows them, and in this process, where a Redis writer cannot delete them."""

    mine: dict[str, dict[str, float]] = {}  # destination: event id -> when it was signed

    def __init__(self, client: redis.Redis, destination: str) -> None:
        self.client, self.key = client, POSTED + destination
        self.here = Posted.mine.setdefault(destination, {})

    def has(self, event: AlertEvent) -> bool:
        try:
            stored = self.client.zscore(self.key, event.id) is not None
        except redis.ResponseError:
            # not a sorted set (written by someone else): replaced, else recording a post would
            # fail after the post and the event be posted again each round; what this process
            # saw still counts
            log.error("%s is not a sorted set; replacing it", self.key)
            self.client.delete(self.key)
            stored = False
        return event.id in self.here or stored

    def add(self, pipe: redis.client.Pipeline, event: AlertEvent, now: float) -> None:
        self.here[event.id] = event.signed
        for old in [k for k, signed in self.here.items() if now - signed > KEEP_SECONDS]:
            del self.here[old]
        pipe.zadd(self.key, {event.id: event.signed})
        pipe.zremrangebyscore(self.key, "-inf", now - KEEP_SECONDS)


def checked(client: redis.Redis, signer: Signer, raw: dict[bytes, bytes], posted: Posted,
            where: str, entry_id: bytes) -> AlertEvent | None:
    """The event of an entry if it may be posted to this destination; else None, audited."""
    try:
        event = AlertEvent.opened(signer, raw)
        age = time.time() - event.signed
        if age > KEEP_SECONDS:
            why = f"signed {age:.0f}s ago, beyond {KEEP_SECONDS}s: stale or written back"
        elif posted.has(event):
            why = f"event {event.id} was posted there already: a replay"
        else:
            return event
    except RecordForged as exc:
        why = str(exc)
    log.error("alert entry %s for %s dropped: %s", entry_id, where, why)
    Audit(client).record("alerts", "dropped-alert",
                         detail=f"{where}: entry {entry_id.decode(errors='replace')}: {why}")
    return None


def deliver(client: redis.Redis, frontends: Mapping[str, Frontend], channels: Mapping[str, str],
            call: Callable[[Any], Any], signer: Signer) -> int:
    """Post pending alert events; returns how many posts were made. ``call`` runs a frontend
    coroutine to completion (the relay's bridge onto the bot's event loop); ``signer`` opens
    the events (only those drbot signed are posted)."""
    posted = 0
    for name, channel in channels.items():
        frontend = frontends.get(name)
        if frontend is None or not channel:
            continue
        posted += _deliver_to(client, frontend, channel, call, signer)
    return posted


def pending(client: redis.Redis, frontend: str) -> bool:
    """Are there alert events this frontend has not been given yet?"""
    try:
        newest = client.xrevrange(EVENTS, count=1)
        return bool(newest) and client.get(CURSOR + frontend) != newest[0][0]
    except redis.ResponseError:  # a key of the wrong type: delivery rewrites the cursor
        return False


def _thread(client: redis.Redis, signer: Signer, field: str) -> ThreadRef | None:
    """The alert's thread in a frontend, as the bot stored it (signed for that alert and
    frontend): a reference written or moved by anyone else is audited and not followed, and the
    event is posted as a message of its own in the alert channel."""
    stored = client.hget(THREADS, field)
    if stored is None:
        return None
    try:
        return signer.open(stored, "alert thread", THREADS + field)  # type: ignore[return-value]
    except RecordForged as exc:
        log.error("alert thread of %s not followed: %s", field, exc)
        Audit(client).record("alerts", "dropped-thread", detail=f"{field}: {exc}")
        return None


def _deliver_to(client: redis.Redis, frontend: Frontend, channel: str,
                call: Callable[[Any], Any], signer: Signer) -> int:
    cursor_key = CURSOR + frontend.name
    done = Posted(client, frontend.name)
    try:
        cursor = client.get(cursor_key) or b"0-0"  # the stream is capped: a new bot sees its tail
    except redis.ResponseError:  # not a string at all: the next delivery overwrites it
        cursor = b"not a string"
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
        event = checked(client, signer, raw, done, frontend.name, entry_id)
        if event is None:
            client.set(cursor_key, entry_id)
            continue
        thread_field = f"{frontend.name}:{event.alert}"
        try:
            thread = _thread(client, signer, thread_field)
        except redis.ResponseError as exc:  # one bad entry is skipped
            log.error("alert entry %s skipped: %s", entry_id, type(exc).__name__)
            client.set(cursor_key, entry_id)
            continue
        try:
            ref = call(frontend.alert(channel, event.text, thread))
            if event.file and ref:
                attach_file(client, frontend, ref, event.file, call)
        except Exception as exc:  # noqa: BLE001  (a platform error must not stop the bot)
            log.warning("alert to %s #%s failed (%s); will retry", frontend.name, channel, exc)
            break
        with client.pipeline(transaction=True) as pipe:
            if thread is None and event.type in OPENERS and ref:
                pipe.hset(THREADS, thread_field, signer.seal(dict(ref), THREADS + thread_field))
            if event.type in ("recovered", "sight", "gone"):
                pipe.hdel(THREADS, thread_field)
            done.add(pipe, event, time.time())
            pipe.set(cursor_key, entry_id)
            pipe.execute()
        posted += 1
    return posted


def attach_file(client: redis.Redis, frontend: Frontend, ref: ThreadRef, named: str,
                call: Callable[[Any], Any]) -> None:
    """The file a signed event names ("<job>:<sha256>:<name>"), under the message just posted,
    if its bytes still hash to the signed digest (bot/records/files.py)."""
    job_id, _, rest = named.partition(":")
    sha, _, name = rest.partition(":")
    data = files.get(client, job_id, sha)
    if data is None or not files.NAME.match(name):
        log.warning("alert file %s is gone or altered; posted without it", name)
        return
    call(frontend.attach(ref, name, data, "the picture"))


# -- beyond chat: Apprise URLs ------------------------------------------------------------------
# Apprise (github.com/caronc/apprise) speaks ntfy, Gotify, Matrix, e-mail, Pushover... by URL; its
# ntfy plugin posts ntfy's JSON publish form ({"topic", "title", "message"}) to the server's root
# (apprise/plugins/ntfy.py; https://docs.ntfy.sh/publish/#publish-as-json).
OUTBOUND = "apprise:"  # + the URL's name, after CURSOR: its cursor
FIRST_LOOK_MS = 3600 * 1000  # a destination seen for the first time gets the last hour, not years
TITLES = {"missed": "drbot: backup missed", "blind": "drbot: watch is blind",
          "reminder": "drbot: still failing", "blind-reminder": "drbot: watch still blind",
          "recovered": "drbot: recovered", "sight": "drbot: watch sees again",
          "gone": "drbot: alert closed", "report": "drbot: DR readiness"}


def read_secret(path: str, what: str) -> str:
    """A secret from its file, handed to the redactor so that no log line can carry it."""
    from bot.errors import ConfigError
    from bot.redact import REDACT

    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path} ({exc.strerror}); mount the secret there "
                          "or fix the inventory") from None
    REDACT.add([value, quote(value, safe="")])
    return value


def url_of(target: AlertUrl) -> str:
    """The URL with each {placeholder} filled from its secret file (URL-quoted)."""
    return PLACEHOLDER.sub(lambda m: quote(read_secret(target.secrets[m.group(1)],
                                                       f"alerts.apprise {target.name}"), safe=""),
                           target.url)


def kind_of(event_type: str) -> Any:
    import apprise

    if event_type == "report":
        return apprise.NotifyType.INFO
    if event_type in ("recovered", "sight", "gone"):
        return apprise.NotifyType.SUCCESS
    return apprise.NotifyType.FAILURE if event_type in OPENERS else apprise.NotifyType.WARNING


def send_out(client: redis.Redis, target: AlertUrl, signer: Signer) -> int:
    """Send this destination the alert events it has not had; stop at the first failure (the
    cursor stays, so the next round retries it). Returns how many were sent. Only events drbot
    signed are sent, each once, as in chat."""
    import apprise

    logging.getLogger("apprise").setLevel(logging.WARNING)  # its debug lines carry headers
    cursor_key = CURSOR + OUTBOUND + target.name
    cursor = client.get(cursor_key)
    start = b"(" + cursor if cursor else f"{int(time.time() * 1000) - FIRST_LOOK_MS}-0".encode()
    sent = 0
    done = Posted(client, OUTBOUND + target.name)
    for entry_id, raw in client.xrange(EVENTS, min=start, count=BATCH):
        event = checked(client, signer, raw, done, f"apprise {target.name}", entry_id)
        if event is None:
            client.set(cursor_key, entry_id)
            continue
        try:
            out = apprise.Apprise()
            if not out.add(url_of(target)):
                log.warning("alerts.apprise %s: not a URL Apprise knows; fix the inventory",
                            target.name)
                return sent
            ok = out.notify(body=event.text, title=TITLES.get(event.type, "drbot"),
                            notify_type=kind_of(event.type))
        except Exception as exc:  # noqa: BLE001  (a bad secret file must not stop the others)
            log.warning("alert to %s failed (%s); will retry", target.name, exc)
            return sent
        if not ok:
            log.warning("alert to %s was not accepted; will retry", target.name)
            return sent
        with client.pipeline(transaction=True) as pipe:
            done.add(pipe, event, time.time())
            pipe.set(cursor_key, entry_id)
            pipe.execute()
        sent += 1
    return sent


class Outbound:
    """Sends alerts to the inventory's Apprise URLs, each destination from its own thread: one
    that hangs until its timeout holds back only itself, never the chat relay nor the others."""

    def __init__(self, targets: Callable[[], list[AlertUrl]], client: redis.Redis,
                 signer: Signer, every: float = 2.0) -> None:
        self.targets, self.client, self.every = targets, client, every
        self.signer = signer
        self.stopping = threading.Event()
        self.busy: dict[str, threading.Thread] = {}

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                targets = self.targets()
            except Exception as exc:  # noqa: BLE001  (an inventory being edited; next round)
                log.warning("alerts beyond chat: inventory unreadable (%s)", exc)
                targets = []
            for target in targets:
                running = self.busy.get(target.name)
                if running is None or not running.is_alive():
                    self.busy[target.name] = thread = threading.Thread(
                        target=self._send, args=(target,), name=f"alert-{target.name}",
                        daemon=True)
                    thread.start()
            self.stopping.wait(self.every)

    def _send(self, target: AlertUrl) -> None:
        try:
            send_out(self.client, target, self.signer)
        except redis.RedisError as exc:
            log.warning("alerts to %s paused: redis unavailable (%s)", target.name, exc)

    def stop(self) -> None:
        self.stopping.set()

"""The relay: renders each job's events into its thread, in the bot process.

It runs on its own thread with blocking XREADs over the active jobs' streams and calls the
frontends' coroutines on the bot's event loop. Its state per job (frontend, thread, last delivered
event id) is kept in Redis, so after a restart it resumes from the last event it delivered.

Delivery is at least once: a milestone reply is recorded as delivered only after the frontend took
it, so it may repeat only if the bot died in between. The status card is only ever edited (it was
created with the thread), throttled to the frontend's rate, and always re-rendered from the job
record, which is the truth, so a restart never leaves it stale.

Redis is not trusted here either. The thread a job speaks in is named by its signed record (the
bot writes it there when it opens the thread), never by the relay's own state, which holds only a
cursor; an event is shown only if drbot signed it for that job; a job without a valid record is
dropped and audited. Every entry is read defensively: a bad one is audited and skipped, and the
loop goes on serving the other jobs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.client import Pipeline

from bot.chat.frontends.base import Frontend, ThreadRef
from bot.chat.render import FINAL, card, milestone
from bot.errors import CommandError, RecordForged
from bot.metrics import RELAY_LAG
from bot.records import files
from bot.records.events import ENTRY_ID, STREAM, Event, EventType
from bot.records.jobs import JOB_ID, Job, JobStatus
from bot.runtime import Runtime

STATE = "drbot:relay:"
ACTIVE = "drbot:relay:active"
WAKE = "drbot:relay:wake"  # a new thread to follow: the relay's blocking read returns at once
log = logging.getLogger("drbot.relay")


@dataclass
class Tracked:
    job_id: str
    frontend: Frontend
    thread: ThreadRef
    last: str
    dirty: bool = True
    last_edit: float = 0.0
    latest: Event | None = None
    final: bool = False
    lag: list[float] = field(default_factory=list)


def attach(rt: Runtime, job_id: str, frontend: str, thread: ThreadRef) -> None:
    """Start relaying a job's events into the thread its frontend opened for it: the thread is
    written into the job's signed record, which is where the relay takes it from."""
    def change(job: Job) -> None:
        job.thread = {"frontend": frontend, "ref": thread}
    key = STATE + job_id

    def follow(pipe: Pipeline, job: Job) -> None:
        """The relay's own state for the thread, written with the record: one round trip."""
        pipe.hsetnx(key, "last", "0-0")
        pipe.hset(key, mapping={"frontend": frontend, "thread": json.dumps(thread)})  # people
        pipe.sadd(ACTIVE, job_id)
        pipe.xadd(WAKE, {"job": job_id}, maxlen=100, approximate=True)
    try:
        rt.store.update(job_id, change, follow)
    except redis.ResponseError as exc:  # a key of the wrong type: the relay repairs its set
        log.error("relay: could not attach job %s (%s)", job_id, exc)


def delivered(client: redis.Redis, job_id: str) -> bool:
    """Whether the job's thread shows every event written so far (the relay is caught up)."""
    newest = client.xrevrange(STREAM + job_id, count=1)
    last = client.hget(STATE + job_id, "last")
    return not newest or (last is not None and newest[0][0] == last)


def following(client: redis.Redis, job_id: str) -> bool:
    """Whether the relay still follows the job (it stops once the final result is shown)."""
    return bool(client.sismember(ACTIVE, job_id))


def settled(client: redis.Redis, job: Job) -> bool:
    """Whether the job's thread is final: the job has ended and the relay has shown its outcome
    and let go of it (nothing more will be posted for it)."""
    return job.terminal and not following(client, job.id)


def awaiting_shown(client: redis.Redis, job: Job) -> bool:
    """Whether the job waits for an approval and its thread already asks for it."""
    return job.status == JobStatus.AWAITING_APPROVAL and delivered(client, job.id)


def reactivate(client: redis.Redis, job_id: str) -> None:
    """A retried job speaks in the thread it had."""
    if client.exists(STATE + job_id):
        client.persist(STATE + job_id)
        client.sadd(ACTIVE, job_id)
        client.xadd(WAKE, {"job": job_id}, maxlen=100, approximate=True)


class Relay:
    def __init__(self, rt: Runtime, frontends: dict[str, Frontend],
                 loop: asyncio.AbstractEventLoop, on_tick: Callable[[], None] | None = None,
                 tick: float = 1.0) -> None:
        self.rt, self.frontends, self.loop = rt, frontends, loop
        self.on_tick, self.tick = on_tick, tick
        self.tracked: dict[str, Tracked] = {}
        self.woken = "$"
        self.stopping = threading.Event()
        self.lags: list[float] = []  # event time → frontend call time, seconds (for metrics)

    def lag(self, event: Event) -> None:
        seconds = time.time() - event.at
        self.lags.append(seconds)
        RELAY_LAG.observe(seconds)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    # -- loop -----------------------------------------------------------------------------------
    def run(self) -> None:
        next_tick = 0.0
        while not self.stopping.is_set():
            try:
                self.sync_active()
                self.read(self.wait_ms())
                self.flush()
                if self.on_tick and time.monotonic() >= next_tick:
                    self.on_tick()
                    next_tick = time.monotonic() + self.tick
            except redis.RedisError as exc:
                log.warning("relay: redis unavailable (%s); retrying", exc)
                self.stopping.wait(1.0)
            except Exception:
                log.exception("relay loop error; continuing")
                self.stopping.wait(1.0)

    def stop(self) -> None:
        self.stopping.set()

    def wait_ms(self) -> int:
        """Block on Redis no longer than until the next throttled edit is due."""
        due = [t.last_edit + t.frontend.throttle for t in self.tracked.values() if t.dirty]
        wait = min([self.tick, *(d - time.monotonic() for d in due)])
        return max(1, int(wait * 1000))

    def members(self) -> set[bytes]:
        """The relay's set of jobs to follow. If it is not a set (someone wrote the key), it is
        rebuilt from the jobs not yet ended, whose signed records name their threads."""
        try:
            return self.rt.client.smembers(ACTIVE)
        except redis.ResponseError:
            self.rt.audit.record("relay", "dropped", detail=f"{ACTIVE} was not a set; rebuilt")
            self.rt.client.delete(ACTIVE)
            active = self.rt.store.active()
            if active:
                self.rt.client.sadd(ACTIVE, *active)
            return {a.encode() for a in active}

    def sync_active(self) -> None:
        active = set()
        for member in self.members():
            job_id = member.decode(errors="replace")
            if not JOB_ID.match(job_id):
                self.drop(job_id, "not a job id", member)
                continue
            active.add(job_id)
        for job_id in active - self.tracked.keys():
            tracked = self.follow(job_id)
            if tracked:
                self.tracked[job_id] = tracked
        for job_id in self.tracked.keys() - active:
            del self.tracked[job_id]

    def follow(self, job_id: str) -> Tracked | None:
        """What to relay for a job: its thread from its signed record, the cursor from state."""
        try:
            job = self.rt.store.get(job_id)
            last = (self.rt.client.hget(STATE + job_id, "last") or b"0-0").decode(errors="replace")
        except (RecordForged, CommandError, redis.ResponseError) as exc:
            self.drop(job_id, str(exc))
            return None
        thread = job.thread
        frontend = self.frontends.get(str(thread.get("frontend", "")))
        if frontend is None or not isinstance(thread.get("ref"), dict):
            return None  # another bot's frontend, or no thread yet: leave it be
        if not ENTRY_ID.match(last):
            self.rt.audit.record("relay", "bad-cursor", job=job_id, detail=repr(last[:60]))
            last = "0-0"  # at least once: a milestone may repeat, none is lost
        # A thread just opened shows the card its opener rendered: editing it again before any
        # event would cost a platform call per new job, on the loop that acknowledges the next
        # requests. One with events delivered before (a restarted bot) is refreshed.
        return Tracked(job_id, frontend, thread["ref"], last, dirty=last != "0-0")

    def drop(self, job_id: str, why: str, member: bytes | None = None) -> None:
        """Stop relaying something Redis named that drbot cannot vouch for; audit it."""
        log.error("relay: dropping %r: %s", job_id[:40], why)
        self.rt.audit.record("relay", "dropped", job=job_id[:40], detail=why)
        self.rt.client.srem(ACTIVE, member if member is not None else job_id)
        self.tracked.pop(job_id, None)

    def read(self, block_ms: int) -> None:
        streams = {STREAM + j: t.last for j, t in self.tracked.items() if not t.final}
        streams[WAKE] = self.woken
        try:
            found = self.rt.client.xread(streams, count=200, block=block_ms) or []
        except redis.ResponseError:
            self.drop_unreadable(streams)
            return
        for key, entries in found:
            if key.decode() == WAKE:
                self.woken = entries[-1][0].decode()
                continue
            job_id = key.decode().removeprefix(STREAM)
            tracked = self.tracked.get(job_id)
            if tracked is None:
                continue
            for entry_id, raw in entries:
                try:
                    event = self.rt.events.parse(job_id, entry_id, raw)
                except RecordForged as exc:
                    self.rt.audit.record("relay", "dropped-event", job=job_id, detail=str(exc))
                    self.skip(tracked, entry_id.decode())
                    continue
                if not self.deliver(tracked, event):
                    break

    def drop_unreadable(self, streams: dict[str, str]) -> None:
        """XREAD refused the set of streams: find the keys that are not streams and drop (or,
        for the wake-up stream, reset) them, so one bad key cannot stall every thread."""
        for key in streams:
            if self.rt.client.type(key) in (b"stream", b"none"):
                continue
            if key == WAKE:
                self.rt.client.delete(WAKE)
                self.woken = "$"
                self.rt.audit.record("relay", "dropped", detail="wake-up key was not a stream")
            else:
                self.drop(key.removeprefix(STREAM), "its event key is not a stream")

    def skip(self, tracked: Tracked, entry_id: str) -> None:
        tracked.last = entry_id
        self.rt.client.hset(STATE + tracked.job_id, "last", entry_id)

    def deliver(self, tracked: Tracked, event: Event) -> bool:
        """Hand one event to the frontend; False if it failed (it will be tried again)."""
        if event.milestone or event.type == EventType.FILE:
            try:
                if event.type == EventType.FILE:
                    self.call(self.post_file(tracked, event))
                else:
                    self.call(tracked.frontend.reply(tracked.thread, milestone(event)))
            except Exception as exc:  # noqa: BLE001  (a platform error must not stop the relay)
                log.warning("relay: reply for job %s failed (%s); will retry", tracked.job_id, exc)
                return False
            self.lag(event)
        tracked.dirty = True
        if event.type != EventType.FILE:
            tracked.latest = event
        tracked.final = tracked.final or event.type in FINAL
        tracked.last = event.id
        self.rt.client.hset(STATE + tracked.job_id, "last", event.id)
        return True

    async def post_file(self, tracked: Tracked, event: Event) -> None:
        """The file a signed ``file`` event names, if its bytes still hash to the digest signed
        (bot/records/files.py); else the caption says it is gone."""
        data = await asyncio.to_thread(files.get, self.rt.client, tracked.job_id, event.task)
        if data is None or not files.NAME.match(event.target):
            await tracked.frontend.reply(tracked.thread, f"{event.message} (the file is no "
                                         "longer available)")
            return
        await tracked.frontend.attach(tracked.thread, event.target, data, event.message)

    def flush(self) -> None:
        now = time.monotonic()
        for tracked in list(self.tracked.values()):
            if not tracked.dirty:
                continue
            if not tracked.final and now - tracked.last_edit < tracked.frontend.throttle:
                continue
            try:
                job = self.rt.store.get(tracked.job_id)
            except (RecordForged, CommandError, redis.ResponseError) as exc:  # forged or gone
                self.drop(tracked.job_id, str(exc))
                continue
            try:
                self.call(tracked.frontend.update_card(tracked.thread, card(job, tracked.latest)))
            except Exception as exc:  # noqa: BLE001
                log.warning("relay: card edit for job %s failed (%s)", tracked.job_id, exc)
                continue
            if tracked.latest:
                self.lag(tracked.latest)
            tracked.dirty, tracked.last_edit = False, time.monotonic()
            if tracked.final and job.terminal:
                self.let_go(tracked, job)
            elif tracked.final:  # retried before we caught up: its thread goes on
                tracked.final = False

    def let_go(self, tracked: Tracked, job: Job) -> None:
        """Stop following a job that ended, unless its record changed since it was read: a retry
        (or a worker's late outcome after a "lost" verdict) may have asked to be followed in
        between, and removing the job after that would leave the rest of its thread unsaid."""
        self.rt.client.srem(ACTIVE, tracked.job_id)
        self.rt.client.expire(STATE + tracked.job_id, 7 * 86400)
        del self.tracked[tracked.job_id]
        try:
            now = self.rt.store.get(tracked.job_id)
        except (RecordForged, CommandError, redis.ResponseError):
            return
        if now.version != job.version:
            reactivate(self.rt.client, tracked.job_id)

"""Property: whatever bytes a Redis writer puts into the keys drbot reads, no drbot process
crashes or stalls on them, and drbot goes on serving.

Every key family drbot reads gets random values (of the key's own Redis type, or of a wrong
one); then one pass of each loop that reads it runs in this process, against the real Redis:
the relay (sync, read, flush), the reaper, alert delivery, the bot's request path, the backup
scheduler and the worker taking jobs. Each must return normally. Afterwards a real job runs end
to end through the real worker.
"""

from __future__ import annotations

import asyncio

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq.serializers import JSONSerializer

from bot.chat.reaper import reap
from bot.chat.relay import Relay
from bot.watch import notify
from bot.watch.alert_states import AlertEvent
from bot.watch.scheduler import WatchScheduler
from bot.worker.refusal import worker_queue
from bot.worker.worker import DrbotWorker
from tests.bot.harness import Harness

JOB_ID = "0a0b0c0d"
blobs = st.binary(max_size=64)
STRINGS = ["drbot:job:" + JOB_ID, "drbot:request:console:r1", "drbot:alive:" + JOB_ID,
           "drbot:cancel:" + JOB_ID, "drbot:confirm:" + JOB_ID + ":1", "drbot:rqjob:" + JOB_ID,
           f"drbot:rate:alice:{0}", "drbot:watch:notify:console", "drbot:lock:cluster"]
HASHES = ["drbot:relay:" + JOB_ID, "drbot:watch:state", "drbot:watch:threads",
          "rq:job:" + JOB_ID]
SETS = ["drbot:jobs:active", "drbot:relay:active", "drbot:pids:" + JOB_ID]
STREAMS = ["drbot:events:" + JOB_ID, "drbot:relay:wake", "drbot:watch:alerts", "drbot:audit"]
LISTS = ["rq:queue:drbot"]
ZSETS = ["drbot:jobs", "drbot:watch:posted:console"]
EVERY = STRINGS + HASHES + SETS + STREAMS + LISTS + ZSETS
garbage = st.fixed_dictionaries({
    "values": st.lists(blobs, min_size=1, max_size=4),
    "members": st.lists(st.sampled_from([JOB_ID.encode(), b"\xff\x00", b"", b"deadbeef"]),
                        min_size=1, max_size=3),
    "wrong": st.lists(st.sampled_from(EVERY), max_size=3, unique=True),
})


def write(h: Harness, g: dict) -> None:
    r, values, members = h.redis, g["values"], g["members"]
    r.flushall()
    for key in STRINGS:
        r.set(key, values[0])
    for key in HASHES:
        r.hset(key, mapping={v or b"k": v for v in values} | {b"last": values[-1],
                                                             b"thread": values[0],
                                                             b"frontend": b"console"})
    for key in SETS:
        r.sadd(key, *members)
    for key in STREAMS:
        for v in values:
            r.xadd(key, {b"type": v, b"message": v, b"alert": v, b"text": v, b"sig": v,
                         b"sealed": v})
    for key in LISTS:
        r.rpush(key, *members, *values[:1] or [b"x"])
    for key in ZSETS:
        r.zadd(key, {m or b"-": 1 for m in members})
    for key in g["wrong"]:  # the same key, of another type than drbot expects
        r.delete(key)
        (r.set(key, values[0]) if key not in STRINGS else r.rpush(key, values[0]))


@pytest.fixture
def h(redis_url: str, tmp_path) -> Harness:  # type: ignore[no-untyped-def]
    harness = Harness(redis_url, tmp_path)
    yield harness  # type: ignore[misc]
    harness.close()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(g=garbage)
def test_random_bytes_in_every_key_drbot_reads_never_crash_or_stall_it(h: Harness, g: dict) -> None:
    write(h, g)
    relay = Relay(h.rt, {"console": h.frontend}, h.loop)
    relay.sync_active()
    relay.read(1)
    relay.flush()
    reap(h.rt)
    before = h.frontend.alerts.count("real")
    if h.redis.type("drbot:watch:alerts") == b"stream":  # a real alert among the garbage
        h.redis.xadd("drbot:watch:alerts", AlertEvent("a@1", "missed", "real").sealed(h.rt.signer))
    for _ in range(2):
        notify.deliver(h.rt.client, {"console": h.frontend}, {"console": "alerts"}, relay.call,
                       h.rt.signer)
    assert h.frontend.alerts.count("real") - before <= 1  # never again, whatever the keys hold
    for text in ("/dr jobs", "/dr status", f"/dr job {JOB_ID}", f"/dr retry {JOB_ID}",
                 f"/dr cancel {JOB_ID}", "/dr exercise g", "/dr"):
        assert h.say(text).text  # an answer, never an exception
    try:  # a key of the wrong type is an outage to the scheduler's loop, which it rides out
        WatchScheduler(h.rt, interval=60).tick(0.0)
    except redis.ResponseError as exc:
        assert "WRONGTYPE" in str(exc) and g["wrong"]
    worker = DrbotWorker([worker_queue(h.rt.client, "drbot")], connection=h.rt.client,
                         runtime=h.rt, serializer=JSONSerializer)
    worker.work(burst=True)  # takes every queued entry and returns: none stops it
    assert not h.redis.exists("rq:queue:drbot") or h.redis.type("rq:queue:drbot") != b"list" \
        or h.redis.llen("rq:queue:drbot") == 0


def test_after_garbage_a_real_job_still_runs(h: Harness) -> None:
    write(h, {"values": [b"\xff", b"{}"], "members": [JOB_ID.encode(), b"\xff\x00"],
              "wrong": ["drbot:relay:active"]})
    # A lock that is not a lock refuses the jobs that need it, as "queue unavailable": a delay,
    # which a Redis writer can always cause (docs/security.md); everything else goes on.
    assert not h.say("/dr exercise after").ok
    h.redis.delete("drbot:lock:cluster")
    h.start_worker()
    h.start_relay()
    reply = h.say("/dr exercise after")
    assert reply.ok and reply.job_id, reply.text
    job_id = reply.job_id
    h.wait_status(job_id, "succeeded")
    h.wait_reply(job_id, "drill after finished")
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), h.loop).result(5)

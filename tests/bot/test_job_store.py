"""JobStore.update as a compare-and-set against the bytes the writer last read or wrote
(bot/records/jobs.py, ``Latest``), against a real Redis: one round trip when nobody else wrote,
the usual verified read when someone did, and the same atomic outcome either way."""

from __future__ import annotations

import pytest
import redis
from redis.client import Pipeline

from bot.errors import RecordForged
from bot.records.jobs import ACTIVE, JOB, Job, JobStatus, JobStore, Latest
from bot.records.signing import Signer


def store(redis_url: str) -> tuple[JobStore, redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    return JobStore(client, Signer(b"k" * 64)), client


def new_job(jobs: JobStore) -> Job:
    job, created = jobs.create(Job("0000aaaa", "exercise", {}, "alice", "console:alice",
                                   "console", "r1"))
    assert created
    return job


def transactions(client: redis.Redis) -> dict[str, int]:
    """How often WATCH, MULTI, EXEC and EVALSHA ran since the last CONFIG RESETSTAT."""
    stats = client.info("commandstats")
    return {name: stats[f"cmdstat_{name}"]["calls"]
            for name in ("watch", "multi", "exec", "evalsha") if f"cmdstat_{name}" in stats}


def test_an_unchanged_record_is_written_in_one_script_with_what_goes_with_it(redis_url: str) -> None:
    jobs, client = store(redis_url)
    latest = Latest()
    jobs.get(new_job(jobs).id, latest)
    jobs.update("0000aaaa", lambda job: setattr(job, "confirm", "yes"), latest=latest)
    client.config_resetstat()  # the script is loaded now (once per Redis server)

    def running(job: Job) -> None:
        job.status = JobStatus.RUNNING

    def with_it(pipe: Pipeline, job: Job) -> None:
        pipe.set("drbot:alive:" + job.id, 1, ex=60)
        pipe.xadd("drbot:events:" + job.id, {"type": "step"})

    job = jobs.update("0000aaaa", running, with_it, latest)
    assert transactions(client) == {"evalsha": 1}  # no WATCH, MULTI or EXEC
    assert job.version == 3 and job.confirm == "yes"
    assert jobs.get("0000aaaa").status == JobStatus.RUNNING
    assert client.get(JOB + "0000aaaa") == latest.raw  # kept for the next write
    assert client.get("drbot:alive:0000aaaa") == b"1" and client.xlen("drbot:events:0000aaaa") == 1
    assert client.sismember(ACTIVE, "0000aaaa")


def test_a_record_another_wrote_since_is_read_and_verified_again(redis_url: str) -> None:
    jobs, client = store(redis_url)
    latest = Latest()
    jobs.get(new_job(jobs).id, latest)
    jobs.update("0000aaaa", lambda job: setattr(job, "thread", {"ts": "T1"}))  # the bot, say
    seen: list[dict[str, str]] = []

    def running(job: Job) -> None:
        seen.append(job.thread)
        job.status = JobStatus.RUNNING

    job = jobs.update("0000aaaa", running, latest=latest)
    assert seen == [{}, {"ts": "T1"}]  # tried on the bytes it knew, then on the record as it is
    assert job.version == 3 and jobs.get("0000aaaa").thread == {"ts": "T1"}
    assert client.get(JOB + "0000aaaa") == latest.raw


def test_a_forged_record_in_place_of_the_known_one_is_refused(redis_url: str) -> None:
    jobs, client = store(redis_url)
    latest = Latest()
    jobs.get(new_job(jobs).id, latest)
    assert latest.raw is not None
    client.set(JOB + "0000aaaa", latest.raw.replace(b'"requester":"alice"',
                                                   b'"requester":"mallory"'))
    with pytest.raises(RecordForged):
        jobs.update("0000aaaa", lambda job: None, latest=latest)


def test_a_read_only_check_compares_and_writes_nothing(redis_url: str) -> None:
    jobs, client = store(redis_url)
    latest = Latest()
    jobs.get(new_job(jobs).id, latest)
    before = client.get(JOB + "0000aaaa")
    assert jobs.update("0000aaaa", lambda job: False, latest=latest).version == 1
    assert client.get(JOB + "0000aaaa") == before
    jobs.update("0000aaaa", lambda job: setattr(job, "thread", {"ts": "T1"}))
    assert jobs.update("0000aaaa", lambda job: False, latest=latest).thread == {"ts": "T1"}
    assert latest.raw == client.get(JOB + "0000aaaa")


def test_a_failing_command_fails_the_write_as_a_transaction_would(redis_url: str) -> None:
    """MULTI/EXEC applies the other commands and then raises the failed one's error; so does
    the script (it runs them with pcall)."""
    jobs, client = store(redis_url)
    latest = Latest()
    jobs.get(new_job(jobs).id, latest)
    client.set("not-a-set", "x")

    def with_it(pipe: Pipeline, job: Job) -> None:
        pipe.sadd("not-a-set", job.id)
        pipe.set("after", 1)

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        jobs.update("0000aaaa", lambda job: setattr(job, "thread", {"ts": "T1"}), with_it, latest)
    assert jobs.get("0000aaaa").thread == {"ts": "T1"} and client.get("after") == b"1"


def test_commands_bound_to_an_attempt_run_only_while_it_owns_the_job(redis_url: str) -> None:
    jobs, client = store(redis_url)
    latest = Latest()
    jobs.get(new_job(jobs).id, latest)
    jobs.update("0000aaaa", lambda job: setattr(job, "confirm", "yes"), latest=latest)
    client.config_resetstat()
    assert jobs.while_attempt("0000aaaa", 0, lambda pipe: pipe.set("freed", 1), latest)
    assert transactions(client) == {"evalsha": 1} and client.get("freed") == b"1"

    jobs.update("0000aaaa", lambda job: setattr(job, "thread", {"ts": "T1"}))  # the bot
    assert jobs.while_attempt("0000aaaa", 0, lambda pipe: pipe.set("freed", 2), latest)
    assert client.get("freed") == b"2"  # read again, still attempt 0's

    jobs.update("0000aaaa", lambda job: setattr(job, "attempt", 1))  # a retry took it over
    assert not jobs.while_attempt("0000aaaa", 0, lambda pipe: pipe.set("freed", 3), latest)
    assert client.get("freed") == b"2"


def test_a_record_serializes_as_asdict_did_so_signatures_stay_the_same() -> None:
    """Job.to_dict replaced dataclasses.asdict for speed; records signed before must verify."""
    from dataclasses import asdict

    from bot.records.jobs import Approval, Step
    from bot.records.signing import canonical

    job = Job("0000aaaa", "rebuild-node", {"node": "k3s-2", "n": 3}, "alice", "slack:U1",
              "slack", "r1", thread={"ts": "1.2"}, locks=[["node:k3s-2", "exclusive"]],
              approvals=[Approval("bob", "slack:U2", 1.5, "d1", 2.5, attempt=1, version=4)],
              steps=[Step("destroy VM", "k3s-2", "d", True, result={"vm": {"id": 103}},
                          intent={"replicas": ["a", "b"]}, started=1.0, ended=None)])
    assert canonical(job.to_dict()) == canonical(asdict(job))
    with pytest.raises(TypeError):
        Job("0000bbbb", "x", {"odd": object()}, "a", "b", "c", "d").to_dict()

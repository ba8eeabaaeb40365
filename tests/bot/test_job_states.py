"""Job and step states and event types are enums whose values are the stored strings: a record
written before the enums existed (plain strings) still loads, and what is written now is the
same text on the wire."""

from __future__ import annotations

import json

import pytest
import redis

from bot.errors import RecordForged
from bot.records.events import MILESTONES, Event, Events, EventType
from bot.records.jobs import JOB, Job, JobStatus, JobStore, StepStatus
from bot.records.signing import Signer

KEY = b"s" * 64

# A record as the previous release wrote it: statuses as literal strings.
EARLIER = {
    "id": "0a1b2c3d", "command": "exercise", "args": {"name": "a"}, "requester": "alice",
    "account": "console:alice", "frontend": "console", "request_id": "r-1", "status": "failed",
    "steps": [{"name": "one", "status": "done", "result": {"n": 1}},
              {"name": "two", "status": "failed", "error": "boom"},
              {"name": "three", "status": "pending"}],
    "approvals": [], "attempt": 1, "version": 3,
}


def test_a_record_written_with_literal_strings_loads_as_the_enums(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    signer = Signer(KEY)
    client.set(JOB + EARLIER["id"], signer.seal(EARLIER, JOB + EARLIER["id"]))
    job = JobStore(client, signer).get(EARLIER["id"])
    assert job.status is JobStatus.FAILED
    assert [s.status for s in job.steps] == [StepStatus.DONE, StepStatus.FAILED, StepStatus.PENDING]
    assert job.retryable and job.terminal and not job.not_started
    assert job.current_step is not None and job.current_step.name == "two"


def test_what_is_written_now_is_the_same_strings(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    signer = Signer(KEY)
    store = JobStore(client, signer)
    job, _ = store.create(Job("0a1b2c3e", "exercise", {}, "alice", "console:alice", "console", "r-2"))
    store.update(job.id, lambda j: setattr(j, "status", JobStatus.AWAITING_APPROVAL))
    stored = signer.open(client.get(JOB + job.id), "job", JOB + job.id)
    assert stored["status"] == "awaiting_approval"
    assert json.dumps(JobStatus.RUNNING) == '"running"' and f"{StepStatus.DONE}" == "done"


def test_a_record_with_a_status_drbot_never_wrote_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    signer = Signer(KEY)
    odd = {**EARLIER, "id": "0a1b2c3f", "status": "paused"}
    client.set(JOB + odd["id"], signer.seal(odd, JOB + odd["id"]))
    with pytest.raises(RecordForged, match="unreadable record"):
        JobStore(client, signer).get(odd["id"])


def test_an_event_type_is_stored_as_its_string(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    events = Events(client, Signer(KEY))
    events.emit("0a1b2c3d", Event(EventType.STEP_FAILED, message="x"))
    (_, fields), = client.xrange("drbot:events:0a1b2c3d")
    assert fields[b"type"] == b"step_failed"
    assert EventType.PROGRESS not in MILESTONES and EventType.STEP not in MILESTONES
    assert "denied" in MILESTONES  # a type read back from the stream is a plain string

"""A "worker lost" verdict and a worker's own outcome, written in either order, leave the thread
telling the truth last: the reaper may judge a worker lost whose proof of life ran out while it
was writing its outcome (a loaded machine), and a retry may be asked for while the relay is
letting go of the lost job's thread. Each interleaving is forced by running the other party at
the exact point between two writes, not by timing."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.chat import reaper, relay
from bot.chat.relay import Relay
from bot.records import signals
from bot.records.jobs import Job, Step
from bot.records.locks import exclusive
from bot.worker import pids
from bot.worker.runner import Runner, Superseded
from tests.bot.harness import Harness
from tests.support import wait_until

OUTCOME = "exercise a done: healthy again: apps/web-data"
VERDICT = "worker lost during step two"


@pytest.fixture
def quiet(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    """Core only: no worker, and no relay until a test starts it (its reaper would act on
    its own schedule)."""
    harness = Harness(redis_url, tmp_path)
    yield harness
    harness.close()


def running_job(h: Harness) -> str:
    """A job whose worker started step two and has no proof of life (it looks dead)."""
    job_id = h.say("/dr exercise a").job_id
    assert job_id

    def start(job: Job) -> None:
        job.status = "running"
        job.steps = [Step("one", status="done"), Step("two", status="running")]
    h.rt.store.update(job_id, start)
    return job_id


def late_outcome(h: Harness, job_id: str) -> None:
    """The worker, alive after all, writes its outcome as it does at the end of a job."""
    Runner(h.rt, job_id).finish("succeeded", "done", OUTCOME)


def after_the_verdicts_write(h: Harness, then: Callable[[], None]) -> None:
    """Run ``then`` right after the reaper wrote its verdict, before it does anything else."""
    release = h.rt.locks.release

    def between(*args: Any, **kwargs: Any) -> Any:
        then()
        return release(*args, **kwargs)
    h.rt.locks.release = between  # type: ignore[method-assign]


def test_an_outcome_written_just_after_a_lost_verdict_is_the_threads_last_word(
        quiet: Harness) -> None:
    job_id = running_job(quiet)
    after_the_verdicts_write(quiet, lambda: late_outcome(quiet, job_id))
    assert reaper.lost(quiet.rt, quiet.job(job_id))
    assert quiet.job(job_id).status == "succeeded"  # the worker's outcome came after
    quiet.start_relay()
    quiet.wait_settled(job_id)
    replies = quiet.frontend.replies(job_id)
    said = [i for i, r in enumerate(replies) if VERDICT in r]
    assert said and OUTCOME in replies[-1] and said[-1] < len(replies) - 1, replies


def test_an_outcome_after_the_relay_let_go_of_a_lost_job_is_still_posted(
        quiet: Harness) -> None:
    job_id = running_job(quiet)
    quiet.start_relay()
    assert reaper.lost(quiet.rt, quiet.job(job_id))
    quiet.wait_reply(job_id, VERDICT)
    quiet.wait_settled(job_id)  # the relay let go of the thread at the verdict
    late_outcome(quiet, job_id)
    quiet.wait_reply(job_id, OUTCOME)
    quiet.wait_settled(job_id)
    assert OUTCOME in quiet.frontend.replies(job_id)[-1]


def test_a_retry_between_the_relays_read_and_its_letting_go_keeps_the_thread_followed(
        quiet: Harness) -> None:
    job_id = running_job(quiet)
    assert reaper.lost(quiet.rt, quiet.job(job_id))
    following = Relay(quiet.rt, {"console": quiet.frontend}, quiet.loop)
    following.sync_active()
    following.read(1)
    assert following.tracked[job_id].final  # it delivered the verdict
    store_get = quiet.rt.store.get
    retried: list[Job] = []

    def get_then_retry(wanted: str) -> Job:
        job = store_get(wanted)
        if not retried:  # the flush has read the lost job; now the retry is asked for
            retried.append(job)
            assert quiet.say(f"/dr retry {job_id}", who="carol").ok
        return job
    quiet.rt.store.get = get_then_retry  # type: ignore[method-assign]
    try:
        following.flush()
    finally:
        quiet.rt.store.get = store_get  # type: ignore[method-assign]
    assert retried and retried[0].status == "lost"
    assert relay.following(quiet.redis, job_id)  # the retry's thread goes on
    wait_until(lambda: quiet.job(job_id).status == "queued", 10, "the retry queued")


def test_a_late_worker_writes_nothing_and_frees_nothing_once_a_retry_owns_the_job(
        quiet: Harness) -> None:
    """The reaper judged a late worker lost and a retry runs: the late worker's outcome must not
    overwrite the retry's record, and its cleanup must not free the retry's locks."""
    job_id = running_job(quiet)
    late = Runner(quiet.rt, job_id)
    late.attempt = quiet.job(job_id).attempt  # what run() records when it admits the job
    held = [exclusive("cluster")]
    late.held = held

    def retried(job: Job) -> None:
        job.status, job.attempt = "running", job.attempt + 1
    retry = quiet.rt.store.update(job_id, retried)
    assert quiet.rt.locks.acquire(job_id, held, 600) is None  # the retry holds the lock
    with pytest.raises(Superseded):
        late.finish("succeeded", "done", OUTCOME)
    late.cleanup()
    after = quiet.job(job_id)
    assert (after.status, after.attempt, after.version) == ("running", 1, retry.version)
    assert job_id in quiet.rt.locks.holders("cluster")  # still the retry's
    assert not any(e.message == OUTCOME for e in quiet.rt.events.read(job_id))


def test_a_retry_admitted_while_a_late_worker_lets_go_keeps_its_locks(
        quiet: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry comes after the late worker's last check and before it frees the locks (it
    is ending its subprocesses then): the locks, held under the same job id, stay the retry's."""
    job_id = running_job(quiet)
    late = Runner(quiet.rt, job_id)
    late.attempt = quiet.job(job_id).attempt
    held = [exclusive("cluster")]
    late.held = held
    assert quiet.rt.locks.acquire(job_id, held, 600) is None  # the late worker's own lease

    def retry_meanwhile(*args: Any) -> None:
        def retried(job: Job) -> None:
            job.status, job.attempt = "running", job.attempt + 1
        quiet.rt.store.update(job_id, retried)
        assert quiet.rt.locks.acquire(job_id, held, 600) is None
    monkeypatch.setattr(pids, "end_all", retry_meanwhile)
    with pytest.raises(Superseded):
        late.finish("succeeded", "done", OUTCOME)
    after = quiet.job(job_id)
    assert (after.status, after.attempt) == ("running", 1)
    assert job_id in quiet.rt.locks.holders("cluster")
    assert not any(e.message == OUTCOME for e in quiet.rt.events.read(job_id))


def test_a_worker_ends_only_the_subprocesses_its_own_attempt_started(quiet: Harness) -> None:
    """Both are recorded under the job's id (a retry's are too); only its own are its to end."""
    job_id = running_job(quiet)
    runner = Runner(quiet.rt, job_id)
    runner.attempt, runner.held = quiet.job(job_id).attempt, []
    own, other = (subprocess.Popen(["sleep", "600"], start_new_session=True) for _ in range(2))
    try:
        for child in (own, other):
            signals.record_subprocess(quiet.redis, job_id, child.pid)
        runner.spawned.append(own.pid)
        runner.cleanup()
        assert own.wait(30) is not None
        assert other.poll() is None
        assert [pid for pid, _ in signals.subprocess_entries(quiet.redis, job_id)] == [other.pid]
    finally:
        for child in (own, other):
            child.kill()
            child.wait()

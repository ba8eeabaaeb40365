"""A signed `/dr confirm` captured from Redis and written back never starts a phase it was not
given for: not another job's, not a later phase, not a later wait of the same phase (a
confirmation is used once). Each refusal is audited and noted in the thread, the phase keeps
waiting, and a real confirmation still starts it. The real worker runs a two-phase drill runbook
that waits with rebuild-cluster's own step (handlers/confirm.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.records.confirmations import KEY as CONFIRM
from bot.records.events import STREAM
from handlers.confirm import step_name
from tests.bot.harness import POLICY, Harness, wait_until

PHASES_POLICY = POLICY.replace("lab: true", "  exercise-phases: {allow: [operator, admin]}\n"
                                             "  confirm: {allow: [operator, admin]}\nlab: true")


@pytest.fixture
def phases(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(redis_url, tmp_path, policy_text=PHASES_POLICY)
    h.start_worker()
    h.start_relay()
    yield h
    h.close()


def waiting(h: Harness, job_id: str, phase: int) -> None:
    """Until the job's worker waits for the confirmation of ``phase``."""
    def ready() -> bool:
        job = h.job(job_id)
        step = job.current_step
        return job.status == "running" and step is not None and \
            step.name == step_name(phase) and step.status == "running"
    wait_until(ready, what=f"job {job_id} to wait for phase {phase}")


def refusals(h: Harness, job_id: str, outcome: str) -> list[str]:
    return [e["detail"] for e in h.rt.audit.tail(500)
            if e["action"] == "confirm" and e["outcome"] == outcome and e["job"] == job_id]


def runs(h: Harness, name: str, step: str) -> int:
    return int(h.redis.get(f"drbot:plugin:{name}:{step}") or 0)


def test_a_captured_confirmation_is_refused_elsewhere_later_and_again(phases: Harness) -> None:
    h = phases
    a = h.say("/dr exercise-phases pa").job_id
    assert a
    waiting(h, a, 1)
    # A confirmation given for attempt 1 that the worker never read (it died first) ...
    h.stop_relay()  # (no reaper yet: the record still says running, so /dr confirm accepts)
    h.kill_workers()
    assert h.say(f"/dr confirm {a} 1", who="alice").ok
    earlier = h.redis.get(f"{CONFIRM}{a}:1")
    h.app.start(h.loop)
    h.wait_status(a, "lost", "failed")
    assert h.say(f"/dr retry {a}", who="alice").ok
    h.start_worker()
    waiting(h, a, 1)
    # ... is refused by the retry's wait of the same phase: it was given for an earlier wait.
    assert h.redis.get(f"{CONFIRM}{a}:1") == earlier
    wait_until(lambda: refusals(h, a, "refused-replay"), what="the earlier confirmation refused")
    assert "earlier wait" in refusals(h, a, "refused-replay")[0]
    assert runs(h, "pa", "one") == 0 and h.job(a).current_step.name == step_name(1)
    assert h.say(f"/dr confirm {a} 1", who="alice").ok  # a real one starts the phase
    waiting(h, a, 2)
    assert runs(h, "pa", "one") == 1
    used = h.redis.get(f"{CONFIRM}{a}:1")  # signed, valid, used once

    h.redis.set(f"{CONFIRM}{a}:2", used)  # onto a later phase of the same job
    wait_until(lambda: refusals(h, a, "refused-forged"), what="the later-phase copy refused")
    assert f"signed for '{CONFIRM}{a}:1'" in refusals(h, a, "refused-forged")[0]

    h.start_worker()  # the first is busy with job a, which waits
    b = h.say("/dr exercise-phases pb").job_id
    assert b
    waiting(h, b, 1)
    h.redis.set(f"{CONFIRM}{b}:1", used)  # onto another job
    wait_until(lambda: refusals(h, b, "refused-forged"), what="the other job's copy refused")
    assert runs(h, "pb", "one") == 0 and h.job(b).current_step.name == step_name(1)

    h.redis.set(f"{CONFIRM}{a}:1", used)  # the used one back under its own key: nothing waits
    assert runs(h, "pa", "two") == 0 and h.job(a).current_step.name == step_name(2)
    for job_id in (a, b):  # real confirmations still work after all that
        phase = 2 if job_id == a else 1
        assert h.say(f"/dr confirm {job_id} {phase}", who="alice").ok
    waiting(h, b, 2)
    assert h.say(f"/dr confirm {b} 2", who="alice").ok
    h.wait_status(a, "succeeded")
    h.wait_status(b, "succeeded")
    assert [runs(h, n, s) for n in ("pa", "pb") for s in ("one", "two")] == [1, 1, 1, 1]
    said = b"".join(v for _, raw in h.redis.xrange(STREAM + a) for v in raw.values())
    assert b"a confirmation of phase 2 was ignored" in said  # in the job's thread too

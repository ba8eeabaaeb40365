"""/dr locks and /dr unlock: listing who holds what, freeing only what an ended job left behind."""

from __future__ import annotations

from pathlib import Path

from bot.records.locks import exclusive, held, shared
from lab.fakes.frontend import POLICY
from tests.bot.harness import Harness, wait_until

NO_RECORD = "0badf00d"


def test_locks_lists_key_mode_job_and_age_and_points_at_unlock_only_for_gone_jobs(
        core_only: Harness) -> None:
    live = core_only.say("/dr exercise a").job_id  # no worker: the job stays planning, alive
    core_only.rt.locks.acquire(live, [shared("cluster"), exclusive("drill:a")], ttl=600)
    core_only.rt.locks.acquire(NO_RECORD, [exclusive("node:x")], ttl=600)
    reply = core_only.say("/dr locks", who="dave")  # a viewer may look
    lines = reply.text.splitlines()
    assert reply.ok and len(lines) == 3
    assert lines[0].startswith(f"cluster  shared  job {live} (/dr exercise, alice, planning) since ")
    assert lines[1].startswith(f"drill:a  exclusive  job {live} (/dr exercise, alice, planning)")
    assert "unlock" not in lines[0] + lines[1]
    assert lines[2].startswith(f"node:x  exclusive  job {NO_RECORD} (gone: no such job record)")
    assert lines[2].endswith("its job has ended: /dr unlock node:x")


def test_locks_says_when_none_are_held_and_skips_expired_leases(core_only: Harness) -> None:
    core_only.rt.locks.acquire(NO_RECORD, [exclusive("node:x")], ttl=0.05)
    wait_until(lambda: not held(core_only.redis), what="the short lease to run out")
    assert core_only.say("/dr locks").text == "no locks are held"


def test_unlock_waits_for_an_approval_then_frees_and_audits(drbot: Harness) -> None:
    drbot.rt.locks.acquire(NO_RECORD, [exclusive("node:x")], ttl=600)
    job_id = drbot.say("/dr unlock node:x").job_id
    job = drbot.wait_status(job_id, "awaiting_approval")
    assert job.targets == [f"lock node:x held by job {NO_RECORD}"]
    assert set(drbot.rt.locks.holders("node:x")) == {NO_RECORD}  # nothing freed before approval
    assert not drbot.say(f"/dr approve {job_id}").ok  # the requester cannot approve
    assert drbot.say(f"/dr approve {job_id}", who="bob").ok
    drbot.wait_status(job_id, "succeeded")
    assert drbot.rt.locks.holders("node:x") == {}
    entry = next(e for e in drbot.rt.audit.tail() if e["action"] == "unlock")
    assert (entry["outcome"], entry["person"], entry["job"]) == ("freed", "alice", job_id)
    assert entry["detail"] == f"node:x held by {NO_RECORD}"


def test_unlock_is_refused_while_the_holding_job_lives(drbot: Harness) -> None:
    drbot.redis.set("drbot:plugin:a:hold", 1)
    first = drbot.say("/dr exercise a").job_id
    drbot.wait_status(first, "running")
    drbot.start_worker()  # the first worker is busy with the drill
    job_id = drbot.say("/dr unlock drill:a", who="bob").job_id
    job = drbot.wait_status(job_id, "refused")
    assert f"drill:a is held by job {first} (/dr exercise, alice, running)" in job.error
    assert "still alive: wait for it or /dr cancel" in job.error
    assert set(drbot.rt.locks.holders("drill:a")) == {first}
    drbot.redis.set("drbot:plugin:a:go", 1)
    drbot.wait_status(first, "succeeded")


def test_unlock_of_a_free_key_is_refused(drbot: Harness) -> None:
    job = drbot.wait_status(drbot.say("/dr unlock node:nothing").job_id, "refused")
    assert "no lock node:nothing is held; /dr locks lists the locks" in job.error


def test_unlock_is_for_admins_only_by_the_policy(drbot: Harness) -> None:
    reply = drbot.say("/dr unlock node:x", who="carol")
    assert not reply.ok and reply.job_id is None
    assert reply.text.startswith("carol may not run /dr unlock")


def test_unlock_is_refused_when_the_policy_asks_no_approval(redis_url: str,
                                                            tmp_path: Path) -> None:
    lax = POLICY.replace('unlock: {allow: [admin], approvals: 1, approvers: ["role:admin"], '
                         'expires: 30m}', "unlock: {allow: [admin]}")
    assert lax != POLICY
    harness = Harness(redis_url, tmp_path, policy_text=lax)
    try:
        harness.start_worker()
        harness.rt.locks.acquire(NO_RECORD, [exclusive("node:x")], ttl=600)
        job = harness.wait_status(harness.say("/dr unlock node:x").job_id, "refused")
        assert "without an approval" in job.error
        assert set(harness.rt.locks.holders("node:x")) == {NO_RECORD}
    finally:
        harness.close()

"""Approvals: a different person who is an approver, bound to the plan, atomic, expiring."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bot.config.policy import Policy
from tests.bot.harness import POLICY, Harness, wait_until


def pending(drbot: Harness, text: str = "/dr exercise-gated a", who: str = "carol") -> str:
    job_id = drbot.say(text, who=who).job_id
    assert job_id
    drbot.wait_status(job_id, "awaiting_approval")
    return job_id


def test_approval_by_another_admin_runs_the_job(drbot: Harness) -> None:
    job_id = pending(drbot)
    drbot.wait_reply(job_id, f"/dr approve {job_id}")
    reply = drbot.say(f"/dr approve {job_id}", who="bob")
    assert reply.ok and "approved by bob (1/1); queued to run" in reply.text
    job = drbot.wait_status(job_id, "succeeded")
    assert [a.person for a in job.approvals] == ["bob"]
    drbot.wait_reply(job_id, "approved by bob")
    assert drbot.rt.audit.tail()[-1]  # audited
    assert any(e["action"] == "approve" and e["person"] == "bob" for e in drbot.rt.audit.tail())


def test_requester_cannot_approve_even_from_another_account(drbot: Harness) -> None:
    job_id = pending(drbot, who="alice")
    for account in ("console:alice", "slack:T1/UALICE"):
        reply = drbot.say(f"/dr approve {job_id}", who=account)
        assert not reply.ok and "you requested job" in reply.text
    assert drbot.job(job_id).status == "awaiting_approval" and not drbot.job(job_id).approvals


def test_only_approvers_approve(drbot: Harness) -> None:
    job_id = pending(drbot, who="alice")
    reply = drbot.say(f"/dr approve {job_id}", who="carol")
    assert not reply.ok and "carol is not an approver" in reply.text


def test_two_clicks_make_one_approval(drbot: Harness) -> None:
    job_id = pending(drbot)
    replies = []
    start = threading.Barrier(4)

    def click() -> None:
        start.wait()
        replies.append(drbot.say(f"/dr approve {job_id}", who="bob"))
    clickers = [threading.Thread(target=click) for _ in range(4)]
    for t in clickers:
        t.start()
    for t in clickers:
        t.join()
    assert sum(r.ok for r in replies) == 1
    job = drbot.wait_status(job_id, "succeeded")
    assert len(job.approvals) == 1
    assert drbot.redis.get("drbot:plugin:a:one") == b"1"  # queued and run once


def test_denied_jobs_never_run(drbot: Harness) -> None:
    job_id = pending(drbot)
    assert drbot.say(f"/dr deny {job_id}", who="bob").ok
    assert drbot.job(job_id).status == "denied"
    assert not drbot.say(f"/dr approve {job_id}", who="alice").ok
    drbot.wait_reply(job_id, "denied by bob")
    assert drbot.redis.get("drbot:plugin:a:one") is None


def test_expired_requests_never_run(drbot: Harness, tmp_path: Path) -> None:
    short = tmp_path / "short.yaml"
    short.write_text(POLICY.replace("expires: 1h", "expires: 1s"))
    drbot.rt.__dict__["policy"] = Policy.load(short)
    drbot.env["DRBOT_POLICY"] = str(short)
    drbot.kill_workers()
    drbot.start_worker()
    job_id = pending(drbot)
    drbot.wait_status(job_id, "expired", timeout=10)
    drbot.wait_reply(job_id, "approval request expired")
    reply = drbot.say(f"/dr approve {job_id}", who="bob")
    assert not reply.ok and "not awaiting approval" in reply.text


def test_a_changed_plan_needs_fresh_approval(drbot: Harness) -> None:
    job_id = pending(drbot)
    first = drbot.job(job_id).digest
    drbot.redis.set("drbot:plugin:a:targets", "a,b")  # live state changes after the request
    drbot.say(f"/dr approve {job_id}", who="bob")
    drbot.wait_reply(job_id, "the plan changed since it was approved")
    job = drbot.wait_status(job_id, "awaiting_approval")
    assert job.digest != first and job.approvals == [] and job.targets == ["a", "b"]
    assert drbot.redis.get("drbot:plugin:a:one") is None
    drbot.say(f"/dr approve {job_id}", who="bob")
    drbot.wait_status(job_id, "succeeded")


def test_console_approve_without_id_takes_the_single_pending_job(drbot: Harness) -> None:
    assert "no job is waiting" in drbot.say("/dr approve", who="bob").text
    job_id = pending(drbot)
    reply = drbot.say("/dr approve", who="bob")
    assert reply.ok and job_id in reply.text
    wait_until(lambda: drbot.job(job_id).status != "awaiting_approval", what="the approval")
    assert time.time() - drbot.job(job_id).approvals[0].at < 60

"""bot/chat/approvals.py called directly against a real Redis, without the chat or a worker: each
rule of the two-person approval by itself, with the exact refusal, what is stored and what is
queued. (tests/bot/test_approvals.py shows the same rules end to end through the chat.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from bot.chat import approvals
from bot.errors import CommandError
from bot.records.jobs import Approval, Job
from bot.runtime import Runtime
from tests.bot.harness import Harness

ID = "0000abcd"
POLICY = """
admin_contact: "alice (#ops)"
people:
  alice: {accounts: ["console:alice", "slack:T1/UALICE"], roles: [admin]}
  bob: {accounts: ["console:bob"], roles: [admin]}
  carol: {accounts: ["console:carol"], roles: [operator]}
  erin: {accounts: ["console:erin"], roles: [admin]}
commands:
  drill-gated: {allow: [operator, admin], approvals: 1, approvers: ["role:admin"], expires: 1h}
  drill-two: {allow: [operator, admin], approvals: 2, approvers: ["role:admin"], expires: 2h}
  drill: {allow: [operator, admin], approvals: 1, approvers: ["role:admin"]}
"""


@pytest.fixture
def rt(redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    harness = Harness(redis_url, tmp_path, policy_text=POLICY)  # no process is started
    harness.redis.flushdb()
    try:
        yield harness.rt
    finally:
        harness.close()


def stored(rt: Runtime, command: str = "drill-gated", requester: str = "carol",
           **fields: object) -> Job:
    job = Job(ID, command, {}, requester, f"console:{requester}", "console", "r1",
              status="awaiting_approval", digest="d1", approvals_needed=2 if command == "drill-two"
              else 1, deadline=time.time() + 3600, **fields)  # type: ignore[arg-type]
    rt.store.create(job)
    return rt.store.get(ID)


def caller(rt: Runtime, account: str):  # noqa: ANN201  (a Caller)
    return rt.policy.caller(account)


def queued(rt: Runtime) -> list[str]:
    return Queue(rt.settings.queue, connection=rt.client, serializer=JSONSerializer).job_ids


def refused(rt: Runtime, account: str, verb: str = "approve") -> str:
    decide = approvals.approve if verb == "approve" else approvals.deny
    with pytest.raises(CommandError) as refusal:
        decide(rt, ID, caller(rt, account))
    assert queued(rt) == [] and rt.store.get(ID).status == "awaiting_approval"
    return str(refusal.value)


def test_one_approval_by_another_approver_queues_the_job_once(rt: Runtime) -> None:
    stored(rt)
    before = time.time()
    job = approvals.approve(rt, ID, caller(rt, "console:bob"))
    assert job.status == "queued" and job.decided_by == "bob"
    [approval] = job.approvals
    assert (approval.person, approval.account, approval.digest) == ("bob", "console:bob", "d1")
    assert approval.attempt == 0 and approval.version == 1
    assert before <= approval.at <= time.time()
    assert approval.expires == pytest.approx(approval.at + 3600)  # the rule's 1h
    assert queued(rt) == [f"drbot-{ID}-0-run1"]
    audit = rt.audit.tail()[-1]
    assert (audit["action"], audit["outcome"], audit["person"], audit["account"],
            audit["job"]) == ("approve", "queued", "bob", "console:bob", ID)


def test_a_rule_that_names_no_expiry_gives_the_approval_half_an_hour(rt: Runtime) -> None:
    stored(rt, command="drill")
    job = approvals.approve(rt, ID, caller(rt, "console:bob"))
    assert job.approvals[0].expires == pytest.approx(job.approvals[0].at + 1800)


def test_two_needed_one_waits_the_second_queues(rt: Runtime) -> None:
    stored(rt, command="drill-two")
    first = approvals.approve(rt, ID, caller(rt, "console:bob"))
    assert first.status == "awaiting_approval" and first.decided_by is None
    assert queued(rt) == []
    assert rt.audit.tail()[-1]["outcome"] == "awaiting_approval"
    assert "bob has already approved job" in refused(rt, "console:bob")
    second = approvals.approve(rt, ID, caller(rt, "console:erin"))
    assert second.status == "queued" and second.decided_by == "erin"
    assert queued(rt) == [f"drbot-{ID}-0-run2"]


def test_approvals_for_another_plan_or_attempt_do_not_count(rt: Runtime) -> None:
    old = [Approval("bob", "console:bob", 1.0, "d0", 9e9, 0, 0),  # another plan
           Approval("erin", "console:erin", 1.0, "d1", 9e9, 1, 0)]  # another attempt
    stored(rt, command="drill-two", approvals=old)
    job = approvals.approve(rt, ID, caller(rt, "console:bob"))  # bob again, for this plan
    assert job.status == "awaiting_approval" and len(job.approvals) == 3
    job = approvals.approve(rt, ID, caller(rt, "console:erin"))
    assert job.status == "queued"


def test_an_unlisted_account_is_told_who_to_ask(rt: Runtime) -> None:
    stored(rt)
    assert refused(rt, "console:mallory") == (
        "console:mallory is not on drbot's approval list, so it can run nothing. "
        "Ask alice (#ops) to add you to the policy file.")


@pytest.mark.parametrize("status", ["queued", "running", "denied", "expired"])
def test_only_a_job_awaiting_approval_is_decided(rt: Runtime, status: str) -> None:
    stored(rt)
    rt.store.update(ID, lambda job: setattr(job, "status", status))
    for verb in ("approve", "deny"):
        with pytest.raises(CommandError) as refusal:
            (approvals.approve if verb == "approve" else approvals.deny)(
                rt, ID, caller(rt, "console:bob"))
        assert str(refusal.value) == (f"job {ID} is {status.replace('_', ' ')}, not awaiting "
                                      "approval")
    assert rt.store.get(ID).status == status and queued(rt) == []


def test_an_expired_request_is_refused(rt: Runtime) -> None:
    stored(rt)
    rt.store.update(ID, lambda job: setattr(job, "deadline", time.time() - 1))
    assert refused(rt, "console:bob") == (f"the approval request for job {ID} has expired; ask "
                                          "for it again")


def test_an_approval_at_the_deadline_itself_still_counts(rt: Runtime,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    deadline = stored(rt).deadline
    monkeypatch.setattr("bot.chat.approvals.time.time", lambda: deadline)
    assert approvals.approve(rt, ID, caller(rt, "console:bob")).status == "queued"


def test_a_plan_without_digest_is_approved_for_the_empty_digest(rt: Runtime) -> None:
    stored(rt, command="drill-two")
    rt.store.update(ID, lambda job: setattr(job, "digest", None))
    job = approvals.approve(rt, ID, caller(rt, "console:bob"))
    assert job.approvals[0].digest == ""


def test_no_deadline_never_expires(rt: Runtime) -> None:
    stored(rt)
    rt.store.update(ID, lambda job: setattr(job, "deadline", None))
    assert approvals.approve(rt, ID, caller(rt, "console:bob")).status == "queued"


@pytest.mark.parametrize("verb", ["approve", "deny"])
def test_the_requester_decides_nothing_from_any_account(rt: Runtime, verb: str) -> None:
    stored(rt, requester="alice")
    assert refused(rt, "slack:T1/UALICE", verb) == (
        f"you requested job {ID} (slack:T1/UALICE is alice's account); another approver must "
        f"{verb} it")


@pytest.mark.parametrize("verb", ["approve", "deny"])
def test_who_asked_for_the_retry_decides_nothing(rt: Runtime, verb: str) -> None:
    stored(rt, retried_by="bob")
    assert refused(rt, "console:bob", verb) == (f"you asked for this retry of job {ID}; another "
                                                f"approver must {verb} it")


@pytest.mark.parametrize("verb", ["approve", "deny"])
def test_a_person_who_is_no_approver_decides_nothing(rt: Runtime, verb: str) -> None:
    stored(rt, requester="alice")
    assert refused(rt, "console:carol", verb) == "carol is not an approver for /dr drill-gated"


def test_deny_ends_the_job_and_queues_nothing(rt: Runtime) -> None:
    stored(rt)
    job = approvals.deny(rt, ID, caller(rt, "console:bob"))
    assert job.status == "denied" and job.decided_by == "bob" and queued(rt) == []
    assert rt.store.get(ID).status == "denied"
    audit = rt.audit.tail()[-1]
    assert (audit["action"], audit["outcome"], audit["person"], audit["account"],
            audit["job"]) == ("deny", "denied", "bob", "console:bob", ID)


def test_pending_for_lists_only_what_this_caller_could_approve(rt: Runtime) -> None:
    stored(rt, requester="alice")
    assert [j.id for j in approvals.pending_for(rt, caller(rt, "console:bob"))] == [ID]
    assert approvals.pending_for(rt, caller(rt, "console:alice")) == []  # the requester
    assert approvals.pending_for(rt, caller(rt, "console:carol")) == []  # no approver
    assert approvals.pending_for(rt, caller(rt, "console:mallory")) == []  # nobody
    approvals.approve(rt, ID, caller(rt, "console:bob"))
    assert approvals.pending_for(rt, caller(rt, "console:erin")) == []  # no longer awaiting

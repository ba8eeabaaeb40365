"""The worker trusts nothing in Redis that drbot did not sign, and runs only drbot's runner."""

from __future__ import annotations

import json

from rq import Callback
from rq.serializers import JSONSerializer

from bot.records.events import Event
from bot.records.jobs import JOB
from bot.records.queue import queue
from bot.records.signing import canonical
from tests.bot.harness import Harness, wait_until


def test_a_job_record_written_without_the_key_is_refused_and_audited(drbot: Harness) -> None:
    record = {"id": "0badc0de", "command": "exercise", "args": {"name": "a"}, "requester": "alice",
              "account": "console:alice", "frontend": "console", "request_id": "x",
              "status": "queued"}
    drbot.redis.set(JOB + "0badc0de", canonical({"record": record, "sig": "0" * 64}))
    queue(drbot.redis, "drbot").enqueue_call("bot.worker.runner.run_job", args=["0badc0de"])
    wait_until(lambda: any(e["outcome"] == "refused-forged" for e in drbot.rt.audit.tail()),
               what="the forged record to be audited")
    assert drbot.redis.get("drbot:plugin:a:one") is None


def test_an_approval_added_without_the_key_is_refused(drbot: Harness) -> None:
    job_id = drbot.say("/dr exercise-gated a", who="carol").job_id
    drbot.wait_status(job_id, "awaiting_approval")
    blob = json.loads(drbot.redis.get(JOB + job_id))
    blob["record"]["approvals"] = [{"person": "bob", "account": "console:bob", "at": 1e10,
                                    "digest": blob["record"]["digest"], "expires": 2e10}]
    blob["record"]["status"] = "queued"
    drbot.redis.set(JOB + job_id, canonical(blob))
    queue(drbot.redis, "drbot").enqueue_call("bot.worker.runner.run_job", args=[job_id])
    wait_until(lambda: any(e["outcome"] == "refused-forged" and e["job"] == job_id
                           for e in drbot.rt.audit.tail()), what="the forgery to be audited")
    assert drbot.redis.get("drbot:plugin:a:one") is None
    reply = drbot.say(f"/dr job {job_id}")
    assert not reply.ok and "not written by drbot" in reply.text


def test_an_rq_job_naming_a_foreign_function_is_refused(drbot: Harness, tmp_path) -> None:
    marker = tmp_path / "pwned"
    q = queue(drbot.redis, "drbot")
    foreign = q.enqueue_call("pathlib.Path.touch", args=[str(marker)])
    wrong_args = q.enqueue_call("bot.worker.runner.run_job", args=["../../etc"])
    callback = q.enqueue_call("bot.worker.runner.run_job", args=["0000abcd"],
                              on_success=Callback("pathlib.Path.touch"))
    for job in (foreign, wrong_args, callback):
        wait_until(lambda job=job: not drbot.redis.exists(job.key),
                   what=f"rq job {job.id} to be refused and removed")
    assert not marker.exists()
    refusals = [e for e in drbot.rt.audit.tail() if e["outcome"] == "refused-foreign-job"]
    assert {e["job"] for e in refusals} == {foreign.id, wrong_args.id, callback.id}
    assert "pathlib.Path.touch" in next(e["detail"] for e in refusals if e["job"] == foreign.id)
    assert q.serializer is JSONSerializer  # the queue speaks JSON, never pickle


def test_secrets_never_reach_the_thread(drbot: Harness) -> None:
    drbot.rt.events.emit("feedface", Event(
        "note", message=f"token={'s' * 12} key {drbot.env['DRBOT_SIGNING_KEY']} xoxb-123456789-abc"))
    text = drbot.rt.events.read("feedface")[0].message
    assert "s" * 12 not in text and drbot.env["DRBOT_SIGNING_KEY"] not in text
    assert "xoxb-123456789" not in text and text.count("[redacted]") == 3


def test_the_redactor_knows_every_secret_drbot_reads(tmp_path, monkeypatch) -> None:
    from bot.config.inventory import load_inventory
    from bot.config.settings import Settings
    from bot.redact import REDACT
    from bot.runtime import Runtime
    from bot.worker.services import Services

    vault, k3s = tmp_path / "vault", tmp_path / "k3s-token"
    vault.write_text("vault-pass-" + "v" * 10 + "\n")
    k3s.write_text("plainjoinsecret-" + "t" * 10 + "\n")  # a bare token, no known shape
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "iac:\n  terraform: {dir: /tmp}\n  ansible: {dir: /tmp, inventory: hosts}\n"
        f"  vault_password_file: {vault}\n  k3s_token_file: {k3s}\n")
    monkeypatch.setenv("REDIS_URL", "redis://drbot:url-pass-123456@127.0.0.1:1/0")
    monkeypatch.setenv("DRBOT_SIGNING_KEY", "s" * 64)
    Runtime.from_settings(Settings(), patient=False)
    Services(Settings(), load_inventory(inventory)).iac_secrets()
    failure = ("fatal: [node3]: FAILED! => vault-pass-vvvvvvvvvv plainjoinsecret-tttttttttt "
               "K10abcdef0123456789abcdef::server:f00dbabe redis://drbot:url-pass-123456@x")
    text = REDACT(failure)
    for secret in ("vault-pass-", "plainjoinsecret-", "K10abcdef", "f00dbabe", "url-pass-"):
        assert secret not in text, secret
    assert text.startswith("fatal: [node3]: FAILED! =>")

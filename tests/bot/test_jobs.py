"""A command's path through the core, the queue and the worker, and back into its thread."""

from __future__ import annotations

from tests.bot.harness import Harness


def test_a_job_runs_all_its_steps_and_the_thread_shows_it(drbot: Harness) -> None:
    reply = drbot.say("/dr exercise a")
    assert reply.ok and reply.job_id
    job = drbot.wait_status(reply.job_id, "succeeded")
    assert [s.status for s in job.steps] == ["done", "done", "done"]
    drbot.wait_settled(job.id)
    replies = drbot.frontend.replies(job.id)
    assert replies[0].startswith("Plan:") and "2. two [a] (destructive)" in replies[0]
    assert "drill a finished" in replies[-1] and "steps: one" in replies[-1]
    assert drbot.frontend.last_card(job.id).status == "succeeded"
    assert drbot.frontend.opened.count(job.id) == 1


def test_dry_run_plans_without_effect_or_approval(drbot: Harness) -> None:
    reply = drbot.say("/dr exercise-gated a --dry-run")
    job = drbot.wait_status(reply.job_id, "planned")
    assert not job.approvals and all(s.status == "pending" for s in job.steps)
    assert drbot.redis.get("drbot:plugin:a:one") is None
    drbot.wait_settled(job.id)
    assert "Plan (dry run)" in drbot.frontend.replies(job.id)[0]
    assert "nothing was changed" in drbot.frontend.replies(job.id)[-1]


def test_a_repeated_request_id_gives_one_job(core_only: Harness) -> None:
    first = core_only.say("/dr exercise a", request_id="slack-trigger-1")
    again = core_only.say("/dr exercise a", request_id="slack-trigger-1")
    assert first.job_id and again.job_id is None
    assert f"already submitted as job {first.job_id}" in again.text
    assert core_only.rt.store.recent() == [first.job_id]


def test_jobs_and_job_show_history_and_steps(drbot: Harness) -> None:
    job_id = drbot.say("/dr exercise a").job_id
    drbot.wait_status(job_id, "succeeded")
    listing = drbot.say("/dr jobs", who="dave").text
    assert job_id in listing and "succeeded" in listing and "/dr exercise a (by alice)" in listing
    detail = drbot.say(f"/dr job {job_id}", who="dave").text
    assert "✓ one [a]" in detail and "result: drill a finished" in detail
    assert "no job 00000000" in drbot.say("/dr job 00000000").text


def test_a_failed_step_names_itself_and_the_next_command(drbot: Harness) -> None:
    drbot.redis.set("drbot:plugin:a:fail", 1)
    job_id = drbot.say("/dr exercise a").job_id
    job = drbot.wait_status(job_id, "failed")
    assert [s.status for s in job.steps] == ["done", "failed", "pending"]
    text = drbot.wait_reply(job_id, "failed at step 'two'")
    assert "drill a told to fail" in text and f"/dr retry {job_id}" in text

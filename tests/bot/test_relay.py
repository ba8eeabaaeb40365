"""The relay: every event reaches the thread once the bot is back; the card is never duplicated."""

from __future__ import annotations

from bot.chat import relay
from tests.bot.harness import Harness, wait_until


def test_relay_restart_mid_job_loses_nothing_and_keeps_one_card(drbot: Harness) -> None:
    drbot.redis.set("drbot:plugin:a:hold", 1)
    job_id = drbot.say("/dr exercise a").job_id
    wait_until(lambda: drbot.redis.exists("drbot:plugin:a:in-two"), what="step two")
    drbot.stop_relay()  # the bot goes down mid-job...
    drbot.redis.set("drbot:plugin:a:go", 1)
    drbot.wait_status(job_id, "succeeded")  # ...while the job finishes
    before = list(drbot.frontend.replies(job_id))
    assert not any("drill a finished" in r for r in before)
    assert not relay.settled(drbot.redis, drbot.job(job_id))  # ended, but its thread does not say so
    drbot.app.relay = None
    drbot.start_relay()  # a new relay: state comes from Redis
    drbot.wait_settled(job_id)
    replies = drbot.frontend.replies(job_id)
    assert replies[: len(before)] == before
    assert sum("Plan:" in r for r in replies) == 1  # no milestone repeated
    assert "drill a finished" in replies[-1]
    assert drbot.frontend.opened.count(job_id) == 1  # the status card was never posted again
    assert drbot.frontend.last_card(job_id).status == "succeeded"


def test_card_edits_are_throttled(drbot: Harness) -> None:
    drbot.redis.set("drbot:plugin:a:hold", 1)
    job_id = drbot.say("/dr exercise a").job_id
    wait_until(lambda: int(drbot.redis.get("drbot:plugin:a:ticks") or 0) > 60,
               what="many progress events (~3 s at 20/s)")
    drbot.redis.set("drbot:plugin:a:go", 1)
    drbot.wait_settled(job_id)
    cards = drbot.frontend.threads[job_id]["cards"]
    events = len(drbot.rt.events.read(job_id))
    assert events > 60
    # one edit per throttle window (0.2 s) at most, plus the final one
    assert len(cards) < events / 2


def test_a_job_retried_before_the_relay_caught_up_keeps_its_thread(drbot: Harness) -> None:
    drbot.stop_relay()
    drbot.redis.set("drbot:plugin:a:fail", 1)
    job_id = drbot.say("/dr exercise a").job_id
    drbot.wait_status(job_id, "failed")
    drbot.redis.delete("drbot:plugin:a:fail")
    drbot.redis.set("drbot:plugin:a:hold", 1)
    assert drbot.say(f"/dr retry {job_id}").ok
    drbot.wait_status(job_id, "running")  # the relay will first read the old "failed" event
    drbot.app.relay = None
    drbot.start_relay()
    drbot.wait_reply(job_id, "failed at step 'two'")
    drbot.redis.set("drbot:plugin:a:go", 1)
    drbot.wait_reply(job_id, "drill a finished")
    drbot.wait_settled(job_id)

"""Submission rate limits: per person and for everyone, with an answer that says how many."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.records.rates import KEY, WINDOW
from tests.bot.harness import Harness, wait_until


@pytest.fixture
def limited(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(redis_url, tmp_path, DRBOT_RATE_PERSON_PER_MINUTE=3,
                      DRBOT_RATE_GLOBAL_PER_MINUTE=5)
    # counts are exact within one minute bucket; start well before the next one
    wait_until(lambda: time.time() % WINDOW < 40, timeout=WINDOW, what="the start of a minute")
    yield harness
    harness.close()


def test_one_person_then_everyone_is_told_to_slow_down(limited: Harness) -> None:
    h = limited
    assert all(h.say(f"/dr exercise a{i}", who="alice").ok for i in range(3))
    reply = h.say("/dr exercise a3", who="alice")
    assert not reply.ok and reply.text.startswith("slow down: 3 jobs in the last minute")
    assert h.say("/dr jobs", who="alice").ok  # only submissions are limited
    assert all(h.say(f"/dr exercise b{i}", who="bob").ok for i in range(2))
    reply = h.say("/dr exercise c0", who="carol")
    assert not reply.ok and "slow down: 5 jobs in the last minute from everyone" in reply.text
    refused = [e for e in h.rt.audit.tail(50) if e["outcome"] == "refused-rate"]
    assert [e["person"] for e in refused] == ["carol", "alice"]
    assert len(h.rt.store.recent(50)) == 5  # the refused ones were never queued


def test_a_counter_that_is_not_a_number_counts_as_the_limit(limited: Harness) -> None:
    h = limited
    h.redis.set(f"{KEY}alice:{int(time.time() // WINDOW)}", b"\xffnot a number")
    reply = h.say("/dr exercise x", who="alice")
    assert not reply.ok and reply.text.startswith("slow down:")
    assert h.say("/dr exercise y", who="bob").ok

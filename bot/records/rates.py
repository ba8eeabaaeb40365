"""Submission rate limits: per person and for everyone together, over the last minute.

A sliding-window counter (the current minute's count plus the previous minute's, weighted by how
much of it still lies within the last 60 s) costs one Redis round trip to read (both people's
buckets at once); the count is written in the same transaction that queues the job (``count``),
so a submission costs no round trip of its own for it and a duplicate delivery is not counted.
All of it runs in the thread the core runs in, never on the frontends' event loop. The counters are plain
integers with a two-minute expiry: a Redis writer can reset them, which lets through no more
than the chat accounts could send anyway; a bad value counts as the limit (deny by default).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
from redis.client import Pipeline

from bot.errors import CommandError

KEY = "drbot:rate:"
WINDOW = 60
EVERYONE = "*"


@dataclass(frozen=True)
class RateLimits:
    person: int
    everyone: int


def _count(raw: object, limit: int) -> int:
    """A bucket's count; anything but a number (a key of another type reads as an error) counts
    as the limit."""
    if isinstance(raw, Exception):
        return limit
    try:
        return max(0, int(raw or 0))  # type: ignore[call-overload]
    except ValueError:
        return limit


class Rates:
    def __init__(self, client: redis.Redis, limits: RateLimits) -> None:
        self.client = client
        self.limits = limits

    def _keys(self, who: str, now: float) -> list[str]:
        minute = int(now // WINDOW)
        return [f"{KEY}{who}:{minute}", f"{KEY}{who}:{minute - 1}"]

    def check(self, person: str) -> list[str]:
        """Refuse a submission by ``person`` over either limit (CommandError, saying how many);
        else the buckets to ``count`` it in. One round trip for both people's buckets."""
        now = time.time()
        mine, everyone = self._keys(person, now), self._keys(EVERYONE, now)
        with self.client.pipeline(transaction=False) as pipe:
            for key in (*mine, *everyone):
                pipe.get(key)
            raw = pipe.execute(raise_on_error=False)
        overlap = 1 - (now % WINDOW) / WINDOW
        lim = self.limits
        my_count = _count(raw[0], lim.person) + _count(raw[1], lim.person) * overlap
        all_count = _count(raw[2], lim.everyone) + _count(raw[3], lim.everyone) * overlap
        if my_count >= lim.person:
            raise CommandError(f"slow down: {int(my_count)} jobs in the last minute from {person} "
                               f"(the limit is {lim.person}); try again in a minute")
        if all_count >= lim.everyone:
            raise CommandError(f"slow down: {int(all_count)} jobs in the last minute from everyone "
                               f"(the limit is {lim.everyone}); try again in a minute")
        return [mine[0], everyone[0]]

    @staticmethod
    def count(pipe: Pipeline, keys: list[str]) -> None:
        """Count one submission in the buckets ``check`` returned, inside the caller's write."""
        for key in keys:
            pipe.incr(key)
            pipe.expire(key, 2 * WINDOW)

    def admit(self, person: str) -> None:
        """Check and count one submission by ``person`` on its own (two round trips)."""
        keys = self.check(person)
        with self.client.pipeline(transaction=False) as pipe:
            self.count(pipe, keys)
            pipe.execute()

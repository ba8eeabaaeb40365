"""Submission rate limits: per person and for everyone together, over the last minute.

A sliding-window counter (the current minute's count plus the previous minute's, weighted by how
much of it still lies within the last 60 s) costs one Redis round trip to read and one to count,
from the thread the core runs in, never on the frontends' event loop. The counters are plain
integers with a two-minute expiry: a Redis writer can reset them, which lets through no more
than the chat accounts could send anyway; a bad value counts as the limit (deny by default).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from bot.errors import CommandError

KEY = "drbot:rate:"
WINDOW = 60
EVERYONE = "*"


@dataclass(frozen=True)
class Limits:
    person: int
    everyone: int


def _count(raw: bytes | None, limit: int) -> int:
    try:
        return max(0, int(raw or 0))
    except ValueError:
        return limit


class Rates:
    def __init__(self, client: redis.Redis, limits: Limits) -> None:
        self.client = client
        self.limits = limits

    def recent(self, who: str, limit: int, now: float) -> tuple[float, list[str]]:
        """Submissions by ``who`` in the last minute (estimated), and the buckets to count in."""
        minute = int(now // WINDOW)
        keys = [f"{KEY}{who}:{minute}", f"{KEY}{who}:{minute - 1}"]
        current, previous = (_count(v, limit) for v in self.client.mget(keys))
        overlap = 1 - (now % WINDOW) / WINDOW
        return current + previous * overlap, keys

    def admit(self, person: str) -> None:
        """Count one submission by ``person``, or refuse it with how many there were."""
        now = time.time()
        mine, my_keys = self.recent(person, self.limits.person, now)
        everyone, all_keys = self.recent(EVERYONE, self.limits.everyone, now)
        if mine >= self.limits.person:
            raise CommandError(f"slow down: {int(mine)} jobs in the last minute from {person} "
                               f"(the limit is {self.limits.person}); try again in a minute")
        if everyone >= self.limits.everyone:
            raise CommandError(f"slow down: {int(everyone)} jobs in the last minute from everyone "
                               f"(the limit is {self.limits.everyone}); try again in a minute")
        with self.client.pipeline(transaction=False) as pipe:
            for key in (my_keys[0], all_keys[0]):
                pipe.incr(key)
                pipe.expire(key, 2 * WINDOW)
            pipe.execute()

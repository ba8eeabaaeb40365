"""Holding a request to the lab's APIs before or after it is applied: the fault-injection point.

A test arms a hold for a method and a path pattern; the first client request that matches is
held (its response not sent) either before the API applies it or right after, until the test
releases it. Meanwhile the test can kill the caller (the drbot worker) at exactly that point: the
effect has happened (or not) and the caller never learned of it, as when a machine dies mid-call.
Requests of the lab's own controllers (header ``CONTROLLER_HEADER``) are never held.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field

POLL = 0.02


@dataclass
class Hold:
    method: str
    pattern: re.Pattern[str]
    after: bool = True
    nth: int = 1  # hold the nth matching request (a runbook may make the same request twice)
    seen: int = 0
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    request: str = ""

    def matches(self, method: str, path: str) -> bool:
        return method.upper() == self.method.upper() and bool(self.pattern.search(path))

    def release(self) -> None:
        self.released.set()


class Holds:
    """The armed holds of one lab API (thread-safe: armed by tests, met on the lab's loop)."""

    def __init__(self) -> None:
        self._holds: list[Hold] = []
        self._lock = threading.Lock()

    def arm(self, method: str, path_pattern: str, *, after: bool = True, nth: int = 1) -> Hold:
        hold = Hold(method, re.compile(path_pattern), after, nth)
        with self._lock:
            self._holds.append(hold)
        return hold

    def release_all(self) -> None:
        with self._lock:
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.release()

    def _take(self, method: str, path: str, after: bool) -> Hold | None:
        with self._lock:
            for hold in self._holds:
                if hold.after == after and not hold.reached.is_set() and hold.matches(method,
                                                                                      path):
                    hold.seen += 1
                    if hold.seen < hold.nth:
                        continue
                    hold.request = f"{method} {path}"
                    hold.reached.set()
                    return hold
        return None

    def block(self, method: str, path: str, *, after: bool) -> None:
        """As ``pause``, for a server that gives each request its own thread (moto's S3)."""
        hold = self._take(method, path, after)
        if hold is not None:
            hold.released.wait()

    async def pause(self, method: str, path: str, *, after: bool) -> None:
        """Called by the API for every client request, before and after applying it."""
        hold = self._take(method, path, after)
        while hold is not None and not hold.released.is_set():
            await asyncio.sleep(POLL)

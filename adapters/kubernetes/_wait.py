"""Polling with a deadline, cancellation and tolerance of a briefly unreachable API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from adapters.errors import Cancelled, TimedOut, Unreachable
from adapters.pacing import pause_after
from adapters.progress import Hooks

T = TypeVar("T")

# Longest single sleep, so a cancellation request is seen quickly even with a long poll interval.
_SLICE = 0.5


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    poll: float,
    hooks: Hooks,
    timeout_message: Callable[[str], str],
    cancel_message: str,
) -> T:
    """Call ``check`` until it returns something other than None, and return that.

    ``check`` may raise any adapter error to stop the wait; ``Unreachable`` is tolerated until the
    deadline (the API may blink while a node is rebuilt) and its text is passed to
    ``timeout_message`` as the last error. Raises ``Cancelled`` once ``hooks.cancelled()`` is true
    and ``TimedOut`` at the deadline. Each pause is a share of the time waited so far, between
    pacing.FIRST_PAUSE and ``poll`` (adapters/pacing.py says why).
    """
    started = time.monotonic()
    deadline = started + max(timeout, 0.0)
    last_error = ""
    while True:
        if hooks.cancelled():
            raise Cancelled(cancel_message)
        try:
            result = check()
        except Unreachable as exc:
            last_error = str(exc)
            result = None
        if result is not None:
            return result
        now = time.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            raise TimedOut(timeout_message(last_error))
        _pause(min(pause_after(now - started, poll), remaining), hooks)


def _pause(seconds: float, hooks: Hooks) -> None:
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0 or hooks.cancelled():
            return
        time.sleep(min(_SLICE, left))

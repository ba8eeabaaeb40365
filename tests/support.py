"""Small helpers the tests share: wait on a condition, find a free port, record adapter hooks."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from adapters.progress import Hooks, Progress


def wait_until(predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy and return its value; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder:
    """Hooks for an adapter call that keep what it reported and spawned."""

    def __init__(self, cancel_when: Callable[[], bool] | None = None) -> None:
        self.progress: list[Progress] = []
        self.pids: list[int] = []
        self.hooks = Hooks(
            report=self.progress.append,
            cancelled=cancel_when or (lambda: False),
            spawned=self.pids.append,
        )

    def text(self) -> str:
        return "\n".join(repr(p) for p in self.progress)

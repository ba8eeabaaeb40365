"""How adapters report progress and learn of cancellation, without knowing who listens.

Only the whitelisted fields of ``Progress`` ever leave an adapter: never raw Ansible ``res``/``env``
or whole Terraform output, which may carry secrets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Progress:
    """One progress line: what happened (message) and, where known, to what."""

    message: str
    target: str = ""
    task: str = ""
    host: str = ""
    status: str = ""


def one_line(text: object, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis: progress lines and
    error messages quote outside output, which may be long and span lines."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _ignore(_: object) -> None:
    return None


def _never() -> bool:
    return False


@dataclass
class Hooks:
    """Callbacks an adapter operation uses to talk back to whoever runs it.

    ``report`` receives progress; ``cancelled`` is polled and returns True once the caller wants the
    operation stopped; ``spawned`` receives the pid of every subprocess started (its own session),
    so the caller can record it and end the whole tree later.
    """

    report: Callable[[Progress], None] = field(default=_ignore)
    cancelled: Callable[[], bool] = field(default=_never)
    spawned: Callable[[int], None] = field(default=_ignore)

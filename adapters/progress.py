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


WORD_SLACK = 0.6  # cut at a space only if that keeps at least this share of the room


def shorten(text: str, limit: int, tail: str = "…") -> str:
    """``text`` cut to at most ``limit`` characters, ``tail`` included, at a word boundary:
    "restoring apps/web-data…", never "restoring apps/we…". A text with no space in the last
    part of the room (a long URL or path) is cut where the room ends."""
    if len(text) <= limit:
        return text
    room = max(limit - len(tail), 0)
    cut = text[:room]
    space = cut.rfind(" ")
    if text[room:room + 1] != " " and space >= room * WORD_SLACK:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + tail


def one_line(text: object, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters at a word with an ellipsis: progress
    lines and error messages quote outside output, which may be long and span lines."""
    return shorten(" ".join(str(text).split()), limit)


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

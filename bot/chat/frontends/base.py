"""The neutral interface every frontend implements (no platform types cross it).

A thread reference is an opaque dict that only its own frontend understands (Slack: channel and
ts; Discord: channel and message ids; console: nothing). The status card is the job thread's root
message, so creating the thread creates the card once, and every later change is an edit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from bot.chat.render import Card

if TYPE_CHECKING:
    from bot.chat.app import BotApp

ThreadRef = dict[str, Any]


class Frontend(ABC):
    name: str = "frontend"
    throttle: float = 2.0  # least seconds between two edits of one status card
    connected: bool = True  # for /readyz: False while the platform connection is down

    @abstractmethod
    async def open_thread(self, channel: str, card: Card) -> ThreadRef:
        """Post the job's status card as a root message; return where its thread is."""

    @abstractmethod
    async def update_card(self, thread: ThreadRef, card: Card) -> None:
        """Edit the status card in place."""

    @abstractmethod
    async def reply(self, thread: ThreadRef, text: str) -> None:
        """Post a reply in the job's thread (a milestone, a failure, the result)."""

    @abstractmethod
    async def alert(self, channel: str, text: str, thread: ThreadRef | None = None) -> ThreadRef:
        """Post to an alert channel (in a thread when given); return the message's reference."""

    async def run(self, app: BotApp) -> None:
        """Connect to the platform and serve requests until cancelled (not for the console)."""
        raise NotImplementedError(f"{self.name} is not a long-running frontend")

    async def close(self) -> None:  # noqa: B027  (optional: most frontends hold nothing to close)
        """Disconnect; called once on shutdown."""

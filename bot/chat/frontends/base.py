"""The neutral interface every frontend implements (no platform types cross it).

A thread reference is an opaque dict that only its own frontend understands (Slack: channel and
ts; Discord: channel and message ids; console: nothing). The status card is the job thread's root
message, so creating the thread creates the card once, and every later change is an edit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol

from bot.chat.core import Reply, Request
from bot.chat.render import Card

ThreadRef = dict[str, Any]


class ChatPort(Protocol):
    """All a frontend may ask of the bot process. A frontend holds this and nothing else of drbot's
    (no runtime, no Redis, no policy), so each platform module only translates, and a new platform
    needs to learn these few calls."""

    lab: bool  # the lab configuration: the console may speak as another person

    async def submit(self, request: Request) -> Reply:
        """The command (or a button's decision) through the core; the answer to show the caller."""

    async def open_thread(self, frontend: Frontend, channel: str, reply: Reply) -> None:
        """Create the job's thread with its status card; the relay speaks there from then on."""

    async def complete(self, account: str, platform_roles: Sequence[str], command: str,
                       param: str, prefix: str) -> list[str]:
        """Values this account may pick for one parameter (empty when it may not run it)."""

    def needs_confirmation(self, command: str) -> bool:
        """Whether the policy asks a typed phrase for this command (a platform shows the field)."""

    async def first_delivery(self, key: str) -> bool:
        """False when this platform delivery was seen before (platforms redeliver)."""

    async def audit(self, kind: str, outcome: str, **fields: str) -> None:
        """An entry in the audit log (refused requests, bad input from the platform)."""

    async def unsettled(self, job_ids: Sequence[str], alert_channel: str) -> tuple[list[str], list[str]]:
        """Of these jobs, those still moving and those waiting for approval with their thread up to
        date; "alerts" among the moving while the alert channel has alerts not yet shown."""


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

    async def attach(self, thread: ThreadRef, name: str, data: bytes, caption: str) -> None:
        """Post a file (a picture) in the job's thread with a caption. A platform that cannot
        take files says so in the thread instead."""
        await self.reply(thread, f"{caption} ({name} cannot be shown here)")

    async def run(self, app: ChatPort) -> None:
        """Connect to the platform and serve requests until cancelled (not for the console)."""
        raise NotImplementedError(f"{self.name} is not a long-running frontend")

    async def close(self) -> None:  # noqa: B027  (optional: most frontends hold nothing to close)
        """Disconnect; called once on shutdown."""

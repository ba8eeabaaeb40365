"""A frontend that records what each job thread would show, and the policy the tests speak under.

It is a real implementation of the neutral Frontend interface (as errbot ships a test backend), used
by the tests' harness and by the benches, which must not import the tests.
"""

from __future__ import annotations

from typing import Any

from bot.chat.frontends.base import Frontend, ThreadRef
from bot.chat.render import Card

KEY = "k" * 64
POLICY = """
admin_contact: "alice (#ops)"
people:
  alice: {accounts: ["console:alice", "slack:T1/UALICE"], roles: [admin]}
  bob: {accounts: ["console:bob", "discord:2002"], roles: [admin]}
  carol: {accounts: ["console:carol"], roles: [operator]}
  dave: {accounts: ["console:dave"], roles: [viewer]}
commands:
  help: {allow: [viewer, operator, admin]}
  jobs: {allow: [viewer, operator, admin]}
  job: {allow: [viewer, operator, admin]}
  status: {allow: [viewer, operator, admin]}
  reconcile: {allow: [operator, admin]}
  cancel: {allow: [operator, admin]}
  retry: {allow: [operator, admin]}
  approve: {allow: [operator, admin]}
  deny: {allow: [operator, admin]}
  exercise: {allow: [operator, admin]}
  locks: {allow: [viewer, operator, admin]}
  audit: {allow: [admin]}
  unlock: {allow: [admin], approvals: 1, approvers: ["role:admin"], expires: 30m}
  exercise-gated: {allow: [operator, admin], approvals: 1, approvers: ["role:admin"], expires: 1h}
lab: true
"""


class RecordingFrontend(Frontend):
    """Keeps each job thread: the status card's versions and the replies, in order."""

    name = "console"

    def __init__(self, throttle: float = 0.2) -> None:
        self.throttle = throttle
        self.threads: dict[str, dict[str, list[Any]]] = {}
        self.opened: list[str] = []
        self.alerts: list[str] = []
        self.files: dict[str, list[tuple[str, bytes, str]]] = {}  # job -> (name, bytes, caption)

    async def open_thread(self, channel: str, card: Card) -> ThreadRef:
        self.opened.append(card.job_id)
        self.threads[card.job_id] = {"cards": [card], "replies": []}
        return {"job": card.job_id}

    async def update_card(self, thread: ThreadRef, card: Card) -> None:
        self.threads[thread["job"]]["cards"].append(card)

    async def reply(self, thread: ThreadRef, text: str) -> None:
        self.threads[thread["job"]]["replies"].append(text)

    async def alert(self, channel: str, text: str, thread: ThreadRef | None = None) -> ThreadRef:
        self.alerts.append(text)
        return {"job": "alert"}

    async def attach(self, thread: ThreadRef, name: str, data: bytes, caption: str) -> None:
        self.files.setdefault(thread["job"], []).append((name, data, caption))

    def replies(self, job_id: str) -> list[str]:
        return list(self.threads.get(job_id, {}).get("replies", []))

    def last_card(self, job_id: str) -> Card:
        return self.threads[job_id]["cards"][-1]

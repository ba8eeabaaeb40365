"""The console frontend: commands from stdin, the job threads printed as they happen.

Each input line is one chat message. The account is the OS login (`console:<login>`); `--as NAME` and
lines starting with `@name` speak as someone else, but only in the lab configuration. At end of input
it waits for its jobs to finish (those awaiting approval are reported, not waited for).
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import time
import uuid
from typing import TextIO

from bot.chat.app import BotApp
from bot.chat.core import Request
from bot.chat.frontends.base import Frontend, ThreadRef
from bot.chat.relay import ACTIVE, STATE
from bot.chat.render import Card
from bot.errors import CommandError
from bot.records.events import STREAM
from bot.records.jobs import TERMINAL


class ConsoleFrontend(Frontend):
    name = "console"

    def __init__(self, out: TextIO = sys.stdout, throttle: float = 0.5) -> None:
        self.out = out
        self.throttle = throttle
        self._last: dict[str, str] = {}

    def print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def open_thread(self, channel: str, card: Card) -> ThreadRef:
        self._last[card.job_id] = card.line()
        self.print(card.line())
        return {"job": card.job_id}

    async def update_card(self, thread: ThreadRef, card: Card) -> None:
        line = card.line()
        if self._last.get(thread["job"]) != line:
            self._last[thread["job"]] = line
            self.print(line)

    async def reply(self, thread: ThreadRef, text: str) -> None:
        prefix = f"[{thread['job']}] "
        self.print(prefix + text.replace("\n", "\n" + " " * len(prefix)))

    async def alert(self, channel: str, text: str, thread: ThreadRef | None = None) -> ThreadRef:
        self.print(f"[alert #{channel}] {text}")
        return {"job": f"alert:{channel}"}


def account_for(name: str) -> str:
    return f"console:{name}"


class ConsoleSession:
    def __init__(self, app: BotApp, frontend: ConsoleFrontend, speak_as: str | None,
                 echo: bool) -> None:
        self.app, self.frontend, self.echo = app, frontend, echo
        self.lab = app.rt.policy.lab
        if speak_as and not self.lab:
            raise CommandError("--as works only with the lab configuration (policy `lab: true`); "
                               "in production the console speaks as your OS login")
        self.default = account_for(speak_as or getpass.getuser())
        self.jobs: list[str] = []

    async def line(self, text: str) -> None:
        text = text.strip()
        if not text or text.startswith("#"):
            return
        account = self.default
        if text.startswith("@"):
            name, _, text = text[1:].partition(" ")
            if not self.lab:
                self.frontend.print("@name works only with the lab configuration; "
                                    "the console speaks as your OS login")
                return
            account = account_for(name)
        if self.echo:
            self.frontend.print(f"{account.split(':', 1)[1]}> {text}")
        request = Request("console", account, text, uuid.uuid4().hex)
        reply = await self.app.submit(request)
        self.frontend.print(reply.text if reply.ok else f"error: {reply.text}")
        if reply.job_id:
            self.jobs.append(reply.job_id)
            await self.app.open_thread(self.frontend, "console", reply)
        if self.echo:
            await self.settle()

    async def settle(self, timeout: float = 3600) -> list[str]:
        """Wait until each of this session's jobs has ended or waits for approval, and its thread
        shows everything that happened so far; return notes on the ones still waiting."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy, waiting = await asyncio.to_thread(self._unsettled)
            if not busy:
                return [f"job {j} is still awaiting approval" for j in waiting]
            await asyncio.sleep(0.05)
        return ["gave up waiting for jobs: " + ", ".join(self._unsettled()[0])]

    def _unsettled(self) -> tuple[list[str], list[str]]:
        store, client = self.app.rt.store, self.app.rt.client
        active = {m.decode() for m in client.smembers(ACTIVE)}
        busy, waiting = [], []
        for job_id in self.jobs:
            status = store.get(job_id).status
            if status == "awaiting_approval" and self._delivered(job_id):
                waiting.append(job_id)
            elif status not in TERMINAL or job_id in active:
                busy.append(job_id)
        if self._alerts_pending():
            busy.append("alerts")
        return busy, waiting

    def _alerts_pending(self) -> bool:
        """Alerts for the console's alert channel not yet printed (a check may raise some)."""
        from bot.watch.notify import pending

        return self.frontend.name in self.app.rt.inventory.alerts and \
            pending(self.app.rt.client, self.frontend.name)

    def _delivered(self, job_id: str) -> bool:
        client = self.app.rt.client
        newest = client.xrevrange(STREAM + job_id, count=1)
        last = client.hget(STATE + job_id, "last")
        return not newest or (last is not None and newest[0][0] == last)


async def run(app: BotApp, lines: TextIO, speak_as: str | None, echo: bool) -> int:
    frontend = app.frontends["console"]
    assert isinstance(frontend, ConsoleFrontend)
    session = ConsoleSession(app, frontend, speak_as, echo)
    app.start(asyncio.get_running_loop())
    try:
        while True:
            text = await asyncio.to_thread(lines.readline)
            if not text:
                break
            await session.line(text)
        for note in await session.settle():
            frontend.print(note)
    finally:
        await asyncio.to_thread(app.stop)
    return 0

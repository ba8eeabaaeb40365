"""The console frontend: commands from stdin, the job threads printed as they happen.

Each input line is one chat message. The account is the OS login (`console:<login>`); `--as NAME` and
lines starting with `@name` speak as someone else, but only in the lab configuration. At end of input
it waits for its jobs to finish (those awaiting approval are reported, not waited for).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import pwd
import sys
import time
import uuid
from collections.abc import Callable
from typing import TextIO

from bot.chat.core import Request
from bot.chat.frontends.base import ChatPort, Frontend, ThreadRef
from bot.chat.render import Card
from bot.errors import CommandError


class ConsoleFrontend(Frontend):
    name = "console"

    def __init__(self, out: TextIO = sys.stdout, throttle: float = 0.5,
                 files_dir: str | None = None) -> None:
        self.out = out
        self.throttle = throttle
        self.files_dir = files_dir or default_files_dir()
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

    async def attach(self, thread: ThreadRef, name: str, data: bytes, caption: str) -> None:
        """A terminal shows no picture: the file is written and its path printed."""
        path = os.path.join(self.files_dir, f"{thread['job']}-{name}")
        os.makedirs(self.files_dir, mode=0o700, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        await self.reply(thread, f"{caption}: {path}")


def default_files_dir() -> str:
    """Where the console puts the files a job posts: beside its history, per user."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "state")
    return os.path.join(state, "drbot", "files")


def account_for(name: str) -> str:
    return f"console:{name}"


def os_login() -> str:
    """The login of the process's real user, from the system's user database by uid.
    Never LOGNAME or USER: anyone can set those, and the console's identity is who runs it."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        raise CommandError(f"uid {os.getuid()} has no entry in the user database, so the "
                           "console cannot tell who you are; run it as a named user") from None


class ConsoleSession:
    def __init__(self, app: ChatPort, frontend: ConsoleFrontend, speak_as: str | None,
                 echo: bool) -> None:
        self.app, self.frontend, self.echo = app, frontend, echo
        self.lab = app.lab
        if speak_as and not self.lab:
            raise CommandError("--as works only with the lab configuration (policy `lab: true`); "
                               "in production the console speaks as your OS login")
        # the lab may speak as anyone; elsewhere the console is whoever runs the process
        self.default = account_for(speak_as or (getpass.getuser() if self.lab else os_login()))
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
        if not (reply.ok and reply.in_thread):  # else the thread, on this same screen, says it
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
            busy, waiting = await self.app.unsettled(self.jobs, self.frontend.name)
            if not busy:
                return [f"job {j} is still awaiting approval" for j in waiting]
            await asyncio.sleep(0.05)
        busy, _ = await self.app.unsettled(self.jobs, self.frontend.name)
        return ["gave up waiting for jobs: " + ", ".join(busy)]


async def run(app: ChatPort, frontend: ConsoleFrontend, lines: TextIO, speak_as: str | None,
              echo: bool, banner: Callable[[str], str] | None = None,
              terminal: bool = False) -> int:
    """Read commands until the input ends, then wait until every job's thread has caught up.

    On a terminal: the banner, a prompt with history and tab completion (frontends/terminal.py)."""
    session = ConsoleSession(app, frontend, speak_as, echo)
    if banner:
        frontend.print(banner(session.default))
    if terminal:
        from bot.chat.frontends.terminal import Terminal

        with Terminal(app, asyncio.get_running_loop(), session.default) as term:
            while (text := await asyncio.to_thread(term.read)) is not None:
                await session.line(text)
        frontend.print("")
    else:
        while text := await asyncio.to_thread(lines.readline):
            await session.line(text)
    for note in await session.settle():
        frontend.print(note)
    return 0

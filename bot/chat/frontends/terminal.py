"""The console on a terminal: a prompt, history kept per user, and tab completion from the core.

Completion asks the bot through ChatPort.complete, as Slack and Discord do, so a name offered here
is one the caller may pick (commands first, then the live names: nodes, Kustomizations, PVCs, job
ids). readline calls the completer on the thread that waits in input(), while the event loop runs
elsewhere; the completer hands each question to the loop and waits briefly for the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import readline
from pathlib import Path

from bot.chat.frontends.base import ChatPort
from bot.registry import COMMANDS

PROMPT = "dr> "
HISTORY_LINES = 1000
ASK_SECONDS = 3.0  # a completion that takes longer offers nothing rather than freeze the line
log = logging.getLogger("drbot.console")


def history_file(login: str) -> Path:
    """One history per console user, where XDG says state belongs (readline's own format)."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "drbot" / f"history-{login}"


class Terminal:
    def __init__(self, app: ChatPort, loop: asyncio.AbstractEventLoop, account: str) -> None:
        self.app, self.loop, self.account = app, loop, account
        self.history = history_file(account.split(":", 1)[1])
        self._matches: list[str] = []

    def __enter__(self) -> Terminal:
        self.history.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.history.touch(mode=0o600, exist_ok=True)
        readline.clear_history()
        with contextlib.suppress(OSError):
            readline.read_history_file(self.history)
        readline.set_history_length(HISTORY_LINES)
        readline.set_completer_delims(" \t\n")
        readline.set_completer(self.complete)
        readline.parse_and_bind("tab: complete")
        return self

    def __exit__(self, *exc: object) -> None:
        readline.set_completer(None)
        with contextlib.suppress(OSError):
            readline.write_history_file(self.history)  # trimmed to HISTORY_LINES

    def read(self) -> str | None:
        """One line from the prompt (None at Ctrl-D); a non-empty line is saved at once, so a
        crash or a closed terminal keeps it."""
        try:
            text = input(PROMPT)
        except EOFError:
            return None
        if text.strip():
            with contextlib.suppress(OSError):
                readline.append_history_file(1, self.history)
        return text

    # -- completion -----------------------------------------------------------------------------
    def complete(self, text: str, state: int) -> str | None:
        if state == 0:
            try:
                self._matches = self.candidates(readline.get_line_buffer()[:readline.get_begidx()],
                                                text)
                if len(self._matches) == 1:  # Python's readline appends nothing itself
                    self._matches = [self._matches[0] + " "]
            except Exception as exc:  # noqa: BLE001  (readline swallows errors silently)
                log.debug("completion failed: %s", exc)
                self._matches = []
        return self._matches[state] if state < len(self._matches) else None

    def candidates(self, before: str, text: str) -> list[str]:
        words = before.split()
        if words[:1] == ["/dr"]:
            words = words[1:]
        elif not words and (not text or text.startswith("/")):
            return ["/dr"] if "/dr".startswith(text) else []
        if not words:
            return self.ask("help", "command", text)
        spec = COMMANDS.get(words[0])
        if spec is None:
            return []
        if text.startswith("--"):
            return [f"--{p.name}" for p in spec.params if p.flag and f"--{p.name}".startswith(text)]
        positional = [p for p in spec.params if not p.flag]
        index = len([w for w in words[1:] if not w.startswith("--")])
        if index >= len(positional):
            return []
        return self.ask(spec.name, positional[index].name, text)

    def ask(self, command: str, param: str, prefix: str) -> list[str]:
        future = asyncio.run_coroutine_threadsafe(
            self.app.complete(self.account, (), command, param, prefix), self.loop)
        try:
            found = future.result(ASK_SECONDS)
        except Exception as exc:  # noqa: BLE001  (Redis away, too slow: offer nothing)
            future.cancel()
            log.debug("completion unavailable: %s", exc)
            return []
        return [name for name in found if name.startswith(prefix)]

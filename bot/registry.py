"""The command registry: handlers declare themselves with a decorator that returns them unchanged.

Two kinds of handler exist. A *runbook* handler runs on the worker (which holds the infrastructure
credentials): given the parsed arguments and live state, it returns the Runbook to execute. A
*control* handler runs in the bot and touches only drbot's own records (jobs, approvals, help).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bot.errors import CommandError
from bot.grammar import Param, Parsed, bind, suggest, tokens
from bot.records.locks import LockKey

if TYPE_CHECKING:
    from bot.config.inventory import Inventory


LockRule = Callable[[dict[str, Any], "Inventory"], list[LockKey]]
"""A handler's lock keys from its arguments and the inventory (e.g. which host a node is on)."""


@dataclass(frozen=True)
class CommandSpec:
    name: str
    summary: str
    kind: Literal["runbook", "control"]
    fn: Callable[..., Any]
    params: tuple[Param, ...] = ()
    mutating: bool = False
    locks: LockRule = field(default=lambda args, inventory: [])
    timeout: int = 600
    system: bool = False  # run only by drbot itself (the scheduler), never from chat

    @property
    def usage(self) -> str:
        parts = [f"/dr {self.name}", *(p.usage() for p in self.params)]
        if self.mutating:
            parts.append("[--dry-run]")
        return " ".join(parts)

    def usage_for(self, confirm: str | None) -> str:
        """The usage as the policy makes it: a confirmation phrase the policy asks for is part of
        the command (without it the command is refused), so the usage shows it."""
        return self.usage + (f' --confirm "{confirm}"' if confirm and self.kind == "runbook"
                             else "")


COMMANDS: dict[str, CommandSpec] = {}
SYSTEM = "system:scheduler"  # the only account that may request a system command


def _register(spec: CommandSpec) -> None:
    if spec.name in COMMANDS and COMMANDS[spec.name].fn is not spec.fn:
        raise RuntimeError(f"two handlers claim /dr {spec.name}")
    COMMANDS[spec.name] = spec


def runbook(name: str, *, summary: str, params: tuple[Param, ...] = (), mutating: bool = True,
            locks: LockRule | None = None,
            timeout: int = 600, system: bool = False
            ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``system=True``: requested only by the account SYSTEM (the scheduler), with no policy entry;
    never listed in /dr help and refused from chat."""
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        _register(CommandSpec(name, summary, "runbook", fn, params, mutating,
                              locks or (lambda args, inventory: []), timeout, system))
        return fn
    return decorate


def control(name: str, *, summary: str, params: tuple[Param, ...] = ()
            ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        _register(CommandSpec(name, summary, "control", fn, params))
        return fn
    return decorate


def load(plugins: list[str] | tuple[str, ...] = ()) -> dict[str, CommandSpec]:
    """Import every handler module (and any configured plugin module) so its decorators run."""
    import importlib

    import handlers  # noqa: F401  (registers on import)

    for module in plugins:
        importlib.import_module(module)
    return COMMANDS


def spec(name: str) -> CommandSpec:
    found = load().get(name)
    if found is None:
        raise CommandError(f"unknown command {name!r}{suggest(name, COMMANDS)}; type /dr help")
    return found


def parse(text: str, confirm: Callable[[str], str | None] = lambda name: None
          ) -> tuple[CommandSpec, Parsed]:
    """Any text becomes either a (spec, parsed) pair or a CommandError; never anything else.

    ``confirm`` gives a command's confirmation phrase from the policy, for the usage in errors."""
    words = tokens(text)
    if not words:
        return spec("help"), Parsed("help")
    found = spec(words[0])
    parsed = bind(found.name, found.params, words[1:], found.usage_for(confirm(found.name)))
    if parsed.dry_run and not found.mutating:
        raise CommandError(f"/dr {found.name} changes nothing, so --dry-run does not apply")
    return found, parsed

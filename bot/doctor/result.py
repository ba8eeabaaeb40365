"""One line of the doctor's report: what was checked, green or red, and the fix when red."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from adapters.errors import AdapterError
from adapters.progress import one_line
from bot.errors import CommandError, ConfigError


class Status(StrEnum):
    OK = "ok"
    FAIL = "fail"
    SKIP = "skip"  # not configured: nothing a runbook could need


class System(StrEnum):
    KUBERNETES = "kubernetes"
    PROXMOX = "proxmox"
    STORE = "store"
    SSH = "ssh"
    IAC = "iac"
    DRIFT = "drift"


ICONS = {Status.OK: "✓", Status.FAIL: "✗", Status.SKIP: "-"}


@dataclass(frozen=True)
class Line:
    system: System
    subject: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def key(self) -> str:
        """Stable across runs: what the alert state machine follows."""
        return f"doctor:{self.system.value}:{self.subject}"

    @property
    def red(self) -> bool:
        return self.status is Status.FAIL

    def render(self) -> str:
        text = f"{ICONS[self.status]} {self.system.value} {self.subject}: {self.detail}"
        return text + (f"\n    fix: {self.fix}" if self.red and self.fix else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Line:
        return cls(System(data["system"]), str(data["subject"]), Status(data["status"]),
                   str(data["detail"]), str(data.get("fix", "")))


def ok(system: System, subject: str, detail: str) -> Line:
    return Line(system, subject, Status.OK, detail)


def fail(system: System, subject: str, detail: str, fix: str) -> Line:
    return Line(system, subject, Status.FAIL, detail, fix)


def skip(system: System, subject: str, detail: str) -> Line:
    return Line(system, subject, Status.SKIP, detail)


# Errors an outside system or a bad setting may raise; anything else is a bug and propagates.
EXPECTED = (AdapterError, ConfigError, CommandError, OSError)


def guarded(system: System, subject: str, fix: str,
            check: Callable[[], Iterable[Line]]) -> list[Line]:
    """Run one check; an error becomes a red line (its message usually names the fix already,
    `fix` says what to do in general), so one broken system never hides the others."""
    try:
        return list(check())
    except EXPECTED as exc:
        return [fail(system, subject, _one_line(str(exc)), fix)]


def _one_line(text: str, limit: int = 400) -> str:
    return one_line(text, limit)


def summary(lines: list[Line]) -> str:
    red = sum(1 for line in lines if line.red)
    green = sum(1 for line in lines if line.status is Status.OK)
    return f"{green} green, {red} red" + (" — fix the red lines above" if red else "")

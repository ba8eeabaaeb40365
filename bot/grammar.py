"""The command grammar: `/dr <command> [positional args] [--flags]`, typed per handler.

A handler declares its parameters once; parsing, validation, help text and autocomplete all come from
that declaration. Every bad input becomes a one-line CommandError saying what to type instead.
"""

from __future__ import annotations

import difflib
import re
import shlex
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.errors import CommandError

MAX_LENGTH = 500
PREFIX = "/dr"
# Characters phones and chat clients substitute for what the user meant to type.
LOOKALIKES = {"\u2014": "--", "\u2013": "--", "\u2212": "-", "\u201c": '"', "\u201d": '"',
              "\u2018": "'", "\u2019": "'", "\u00a0": " "}


@dataclass(frozen=True)
class ValueKind:
    """A value type: a pattern, what it is called in errors, and an example."""

    name: str
    pattern: re.Pattern[str]
    example: str

    def check(self, param: str, value: str) -> str:
        if not self.pattern.fullmatch(value):
            raise CommandError(f"{param}: {value!r} is not a valid {self.name} (e.g. {self.example})")
        return value


NAME = ValueKind("name", re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?"), "k3s-server-2")
QUALIFIED = ValueKind("namespace/name", re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/)?"
                                              r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?"),
                 "default/data-postgres-0")
JOB_ID = ValueKind("job id", re.compile(r"[0-9a-f]{8}"), "3f9c2a1b")
PHRASE = ValueKind("phrase", re.compile(r"[ -~]{1,200}"), '"rebuild the whole cluster"')


@dataclass(frozen=True)
class Param:
    """A positional argument (flag=False) or a `--name` option/flag of a command."""

    name: str
    help: str
    kind: ValueKind = NAME
    required: bool = True
    default: str | None = None
    flag: bool = False
    boolean: bool = False
    complete: str | None = None
    namespace: str | None = None  # the namespace an unqualified name means (None: it must be given)
    # (other parameter, value): `complete` names this parameter's values only when that other
    # argument has that value (backup-now's name is a CNPG cluster only with kind cnpg)
    complete_when: tuple[str, str] | None = None

    def usage(self) -> str:
        if self.flag:
            return f"[--{self.name}]" if self.boolean else f"[--{self.name} {self.kind.name.upper()}]"
        return f"<{self.name}>" if self.required else f"[{self.name}]"


DRY_RUN = Param("dry-run", "show the plan; change nothing", flag=True, boolean=True, required=False)
CONFIRM = Param("confirm", "the confirmation phrase the policy asks for", kind=PHRASE, flag=True,
                required=False)


@dataclass(frozen=True)
class Parsed:
    command: str
    args: dict[str, str | bool | None] = field(default_factory=dict)
    dry_run: bool = False
    confirm: str | None = None


def clean(text: str) -> str:
    """Refuse overlong text, control characters and non-ASCII lookalikes, naming the culprit."""
    if len(text) > MAX_LENGTH:
        raise CommandError(f"command is {len(text)} characters long; the limit is {MAX_LENGTH}")
    for pos, char in enumerate(text):
        if char in LOOKALIKES:
            raise CommandError(f"character {pos + 1} is {unicodedata.name(char, '?').lower()} "
                               f"(U+{ord(char):04X}); type {LOOKALIKES[char]!r} instead "
                               "(your keyboard may be replacing it)")
        if not (" " <= char <= "~"):
            what = "a control character" if unicodedata.category(char).startswith("C") else \
                f"{unicodedata.name(char, 'an unknown character').lower()}"
            raise CommandError(f"character {pos + 1} is {what} (U+{ord(char):04X}); "
                               "commands are plain ASCII: retype it")
    return text.strip()


def tokens(text: str) -> list[str]:
    try:
        words = shlex.split(clean(text), comments=False, posix=True)
    except ValueError:
        raise CommandError("unbalanced quotes: close the quote or remove it") from None
    if words and words[0] == PREFIX:
        words = words[1:]
    return words


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def bind(command: str, params: tuple[Param, ...], words: list[str], usage: str) -> Parsed:
    """Match words to a command's parameters; the two global flags are known to every command."""
    flags = {p.name: p for p in params if p.flag} | {DRY_RUN.name: DRY_RUN, CONFIRM.name: CONFIRM}
    positional = [p for p in params if not p.flag]
    values: dict[str, str | bool | None] = {}
    rest: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("--"):
            rest.append(word)
            continue
        name, eq, inline = word[2:].partition("=")
        param = flags.get(name)
        if param is None:
            raise CommandError(f"{command} has no option --{name}{suggest(name, flags)}. "
                               f"Usage: {usage}")
        if name in values:
            raise CommandError(f"--{name} given twice. Usage: {usage}")
        if param.boolean:
            if eq:
                raise CommandError(f"--{name} takes no value. Usage: {usage}")
            values[name] = True
            continue
        if not eq:
            if i >= len(words):
                raise CommandError(f"--{name} needs a value. Usage: {usage}")
            inline, i = words[i], i + 1
        values[name] = param.kind.check(f"--{name}", inline)
    if len(rest) > len(positional):
        raise CommandError(f"too many arguments ({' '.join(rest[len(positional):])}). "
                           f"Usage: {usage}")
    for param, value in zip(positional, rest + [None] * len(positional), strict=False):
        if value is None:
            if param.required:
                raise CommandError(f"missing <{param.name}> ({param.help}). Usage: {usage}")
            values[param.name] = param.default
        else:
            values[param.name] = param.kind.check(param.name, value)
    for param in params:
        if param.flag:
            values.setdefault(param.name, False if param.boolean else None)
    dry_run = bool(values.pop(DRY_RUN.name, False))
    confirm = values.pop(CONFIRM.name, None)
    return Parsed(command, values, dry_run, confirm if isinstance(confirm, str) else None)

"""Did-you-mean for live names, answered at submit so that a typo never becomes a job.

Nodes and Proxmox hosts are checked against the inventory, which is authoritative. Kustomizations,
PVCs and CloudNativePG clusters are checked against the names the worker last listed (the
completion cache: the bot holds no cluster credentials); while there is no listing at all, nothing
is refused, since drbot cannot know. A name missing from an older listing is still refused, with
how old the listing is and how to refresh it, because a fresh one is one `/dr status` away and a
wrong name costs a refused job.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Mapping
from enum import Enum

from bot.chat.complete import AT, SEEN
from bot.errors import CommandError
from bot.grammar import Param
from bot.registry import CommandSpec
from bot.runtime import Runtime

SHOWN = 3  # suggestions in one refusal
CUTOFF = 0.6  # difflib's own default for "close"
MARGIN = 0.05  # suggestions nearly as close as the best one, not every passable one


class Source(Enum):
    """The completion sources whose names exist (or not) outside drbot, and what they are called."""

    nodes = "node"
    hosts = "Proxmox host"
    kustomizations = "Kustomization"
    pvcs = "PVC"
    cnpg = "CloudNativePG cluster"


# Sources where a unique name is enough without its namespace, as the command itself accepts
# it (handlers/backup_now.py cnpg_cluster); a PVC always needs its namespace.
UNIQUE_SHORT = frozenset({Source.cnpg})


def check(rt: Runtime, spec: CommandSpec, args: Mapping[str, object]) -> None:
    """Refuse a typed live name that does not exist, naming the closest ones that do."""
    for param in spec.params:
        value = args.get(param.name)
        if param.complete not in Source.__members__ or not isinstance(value, str) \
                or value == param.default or not applies(param, args):
            continue
        source = Source[param.complete]
        known, listed = names(rt, source)
        if known is None or exists(source, value, param, known):
            continue
        raise CommandError(refusal(source, value, param, known, listed))


def applies(param: Param, args: Mapping[str, object]) -> bool:
    """Whether the parameter names its source for these arguments (see Param.complete_when)."""
    if param.complete_when is None:
        return True
    other, wanted = param.complete_when
    return args.get(other) == wanted


def exists(source: Source, value: str, param: Param, known: set[str]) -> bool:
    if qualify(value, param) in known:
        return True
    if source in UNIQUE_SHORT and "/" not in value:
        return sum(name.rpartition("/")[2] == value for name in known) == 1
    return False


def names(rt: Runtime, source: Source) -> tuple[set[str] | None, float | None]:
    """The existing names and when they were listed; (None, None) when drbot cannot know."""
    if source is Source.nodes:
        return set(rt.inventory.nodes), None
    if source is Source.hosts:
        return set(rt.inventory.hosts), None
    at = rt.client.get(SEEN + source.name + AT)
    if at is None:
        return None, None
    return {m.decode() for m in rt.client.smembers(SEEN + source.name)}, float(at)


def qualify(value: str, param: Param) -> str:
    if "/" in value or param.namespace is None:
        return value
    return f"{param.namespace}/{value}"


def closest(value: str, known: set[str], param: Param) -> list[str]:
    """The same name in other namespaces; else the names nearest to it after the '/', best
    first (ties by name), keeping only those about as near as the best one."""
    short = value.rpartition("/")[2]
    by_short: dict[str, list[str]] = {}
    for name in sorted(known):
        by_short.setdefault(name.rpartition("/")[2], []).append(name)
    if short in by_short:
        return [shown(n, param) for n in by_short[short][:SHOWN]]
    scored = sorted((-difflib.SequenceMatcher(None, short, other).ratio(), other)
                    for other in by_short)
    best = -scored[0][0] if scored else 0.0
    near = [other for score, other in scored if -score >= max(CUTOFF, best - MARGIN)]
    return [shown(n, param) for other in near for n in by_short[other]][:SHOWN]


def shown(name: str, param: Param) -> str:
    """As the user would type it: the default namespace may be left out."""
    namespace, _, short = name.rpartition("/")
    return short if param.namespace and namespace == param.namespace else name


def refusal(source: Source, value: str, param: Param, known: set[str],
            listed: float | None) -> str:
    what = source.value
    near = closest(value, known, param)
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    if listed is None:
        listing = ", ".join(sorted(known)[:10]) + (", ..." if len(known) > 10 else "")
        return f"no {what} {value} in the inventory{hint} (it lists: {listing or 'none'})"
    minutes = max(0, int((time.time() - listed) // 60))
    return (f"no {what} {value}{hint} ({what}s as drbot last listed them, {minutes} min ago; "
            "/dr status lists them again)")

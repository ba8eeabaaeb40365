"""What a saved Terraform plan may hold before drbot applies it.

The planned changes come from the ``planned_change`` messages of ``terraform plan -json``, the
same run that wrote the plan file with ``-out``: the machine-readable UI is a documented,
versioned interface (developer.hashicorp.com/terraform/internals/machine-readable-ui; drbot reads
``ui`` 1.x), it is the stream drbot already reads for progress, and it describes exactly the plan
written by that run. ``terraform show -json <planfile>`` (``resource_changes[].change.actions``)
is documented as well, but it is one more process reading the file back for the same facts.

The action words are upstream's own (hashicorp/terraform internal/command/views/json/change.go
``changeAction``): both orders of a replacement (delete then create, create then delete, and the
forget variants) are the single action ``replace``; ``remove`` is Forget (the object leaves the
state but stays running); ``move`` and ``import`` replace a no-op only.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from adapters.terraform_stream import PlannedChange


class Action(StrEnum):
    """A ``planned_change`` action as Terraform spells it in ``-json`` output."""

    NOOP = "noop"
    MOVE = "move"
    FORGET = "remove"
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    IMPORT = "import"


# Reading a data source and changing nothing touch no machine.
HARMLESS = frozenset({Action.NOOP, Action.READ})


def in_scope(address: str, targets: Sequence[str]) -> bool:
    """True when ``address`` is one of ``targets`` or an instance or resource inside one (a
    target ``a.b`` covers ``a.b["k"]``; a module target ``module.m`` covers what it holds)."""
    return any(address == t or address.startswith((t + "[", t + ".")) for t in targets)


def unexpected(changes: Sequence[PlannedChange], wanted: Action,
               targets: Sequence[str]) -> list[PlannedChange]:
    """The planned changes that are neither harmless nor ``wanted`` on one of ``targets``.

    Only one action is ever wanted: a rebuild creates what it destroyed before (or, in a full
    rebuild's first phase, destroys what it will create), and anything else in the plan is a
    difference between the configuration and the real machines that nobody asked drbot to
    settle. An ``update`` in place is refused as well: for a VM it may mean a reboot or a
    resize of a machine that is running and serving, and a rebuild never needs one.
    """
    return [c for c in changes
            if c.action not in HARMLESS and not (c.action == wanted
                                                 and in_scope(c.address, targets))]


def effective(changes: Sequence[PlannedChange]) -> bool:
    """True when applying the plan would change anything."""
    return any(c.action not in HARMLESS for c in changes)


def describe(changes: Sequence[PlannedChange]) -> str:
    """``replace a (cannot_update), delete b``: what Terraform planned, with its reasons."""
    return ", ".join(f"{c.action} {c.address}" + (f" ({c.reason})" if c.reason else "")
                     for c in changes)

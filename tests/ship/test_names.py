"""No two public classes of the product share a name: a reader who meets `Outcome` or
`Scheduler` should not have to find out which of several it is."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("bot", "handlers", "adapters")
# The same thing twice, on purpose; each with why.
SAME_MEANING = {
    # the inventory's entry, and the verification adapter's own copy of it (adapters import
    # nothing of drbot)
    "SqlCheck",
}


def public_classes() -> dict[str, list[str]]:
    where: dict[str, list[str]] = defaultdict(list)
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    where[node.name].append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return where


def test_no_public_class_name_is_defined_twice() -> None:
    twice = {name: at for name, at in public_classes().items()
             if len(at) > 1 and name not in SAME_MEANING}
    assert twice == {}, f"rename so each name says what it is: {twice}"


def test_the_listed_exceptions_are_still_defined_twice() -> None:
    """An exception that no longer applies is dropped, so the list cannot hide a new one."""
    classes = public_classes()
    assert {name for name in SAME_MEANING if len(classes.get(name, [])) > 1} == SAME_MEANING

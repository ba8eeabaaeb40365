"""Shared fixtures: each realistic server lives in lab/fakes/<system>.py.

The fault-injection matrix (tests/chaos) runs whole with `make chaos` (``--chaos``); without it
only its cases marked ``fast`` run, the others are deselected (not skipped)."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "lab.fakes.redis",
    "lab.fakes.kube",
    "lab.fakes.pve",
    "lab.fakes.s3",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--chaos", action="store_true", help="run the whole fault-injection matrix")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fast: a fault-injection case that runs in make test")


# Directories whose test files take longest, run first: `make test` gives each pytest-xdist
# worker a whole file at a time in collection order, and a long file started last kept one
# worker busy alone after the others had finished.
LONGEST_FIRST = ("tests/e2e/test_rebuild_cluster.py", "tests/e2e/test_rebuild_node.py", "tests/e2e/",
                 "tests/chaos/", "tests/doctor/", "tests/watch/")


def longest_first(item: pytest.Item) -> int:
    path = item.path.as_posix()
    return next((i for i, d in enumerate(LONGEST_FIRST) if d in path), len(LONGEST_FIRST))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=longest_first)  # stable: each file's own order is kept
    if config.getoption("--chaos"):
        return
    dropped = [i for i in items if "tests/chaos/" in i.path.as_posix()
               and not i.get_closest_marker("fast")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]

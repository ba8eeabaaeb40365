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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--chaos"):
        return
    dropped = [i for i in items if "tests/chaos/" in i.path.as_posix()
               and not i.get_closest_marker("fast")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]

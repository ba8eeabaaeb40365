"""Fault injection against the simulated homelab: the e2e fixtures, shared, and a table row for a
case that failed before it could write its own (the job never reached the held request, say)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.chaos import effects
from tests.e2e.conftest import drbot_lab, lab  # noqa: F401


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    before = len(effects.RECORDED)
    outcome: Any = yield
    effect = getattr(item, "callspec", None) and item.callspec.params.get("effect")
    if outcome.excinfo is not None and len(effects.RECORDED) == before and effect:
        error = outcome.excinfo[1]
        case = item.path.stem.removeprefix("test_").replace("_", "-")
        effects.record(case, effect, "FAIL", f"{type(error).__name__}: {str(error)[:200]}")

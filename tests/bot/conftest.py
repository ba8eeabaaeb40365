from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot.harness import Harness


@pytest.fixture
def drbot(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    """Core, relay and one worker, on a clean Redis."""
    harness = Harness(redis_url, tmp_path)
    harness.start_worker()
    harness.start_relay()
    yield harness
    harness.close()


@pytest.fixture
def core_only(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    """Core and relay without a worker: for what must be decided before any job runs."""
    harness = Harness(redis_url, tmp_path)
    harness.start_relay()
    yield harness
    harness.close()

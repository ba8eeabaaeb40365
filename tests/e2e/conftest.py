"""End to end: drbot (core, relay, a real worker subprocess) against the simulated homelab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import Lab
from lab.world import LonghornVersion
from tests.bot.harness import Harness

TIME_SCALE = 0.1


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The lab; a test parametrized indirectly on ``lab`` picks the Longhorn version it runs."""
    longhorn = getattr(request, "param", LonghornVersion.V1_10)
    with Lab(tmp_path / "lab", time_scale=TIME_SCALE, longhorn=longhorn) as running:
        yield running


@pytest.fixture
def drbot_lab(lab: Lab, redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    """drbot with the lab's policy, inventory and credentials; the people are alice, bob, carol."""
    harness = Harness(redis_url, tmp_path, **{**lab.env, "DRBOT_POLICY": str(lab.policy_path),
                                              "DRBOT_PLUGINS": "[]"})
    harness.start_worker()
    harness.start_relay()
    yield harness
    harness.close()

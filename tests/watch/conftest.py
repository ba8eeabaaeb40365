"""The backup watch against the simulated lab: one lab per module (it starts in ~3 s), a clean
Redis per test, and a check whose clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from adapters.s3 import ObjectStore
from bot.config.inventory import Inventory, load_inventory
from bot.config.settings import Settings
from bot.watch import check
from bot.watch.check import CheckOutcome
from bot.worker.services import Services
from lab import Lab
from lab.fakes.frontend import KEY
from tests.e2e.conftest import TIME_SCALE


@pytest.fixture(scope="module")
def watch_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("watch") / "lab", time_scale=TIME_SCALE) as running:
        yield running


class CachedServices(Services):
    """Services that keep one client per store across checks (building a boto3 client takes
    a noticeable part of a second; a real check runs every few minutes, so it does not cache)."""

    def __init__(self, settings: Settings, inventory: Inventory) -> None:
        super().__init__(settings, inventory)
        self._stores: dict[str, ObjectStore] = {}

    def store(self, kind: str) -> ObjectStore:
        if kind not in self._stores:
            self._stores[kind] = super().store(kind)
        return self._stores[kind]


class Checker:
    """Runs checks against the lab at chosen times; `services` may be swapped (a dead endpoint)."""

    def __init__(self, lab: Lab, client: redis.Redis) -> None:
        self.lab = lab
        self.client = client
        self.inventory = load_inventory(lab.inventory_path)
        self.start = datetime.now(UTC)
        self._services: dict[int, tuple[Inventory, Services]] = {}

    def services(self, inventory: Inventory | None = None) -> Services:
        inv = inventory or self.inventory
        if id(inv) not in self._services:
            self._services[id(inv)] = (inv, CachedServices(Settings(kubeconfig=None), inv))
        return self._services[id(inv)][1]

    def at(self, hours: float, inventory: Inventory | None = None) -> CheckOutcome:
        from datetime import timedelta

        inv = inventory or self.inventory
        return check.run(self.client, self.services(inv), inv,
                         self.start + timedelta(hours=hours), key=KEY.encode(), ping=False)

    def with_backups(self, **changes: Any) -> Inventory:
        backups = self.inventory.backups.model_copy(update=changes)
        return self.inventory.model_copy(update={"backups": backups})


@pytest.fixture
def checker(watch_lab: Lab, redis_url: str) -> Iterator[Checker]:
    client = redis.Redis.from_url(redis_url)
    yield Checker(watch_lab, client)
    client.close()


def volume(lab: Lab, pvc: str) -> str:
    from lab import world

    return next(v.name for v in world.VOLUMES if v.pvc == pvc)



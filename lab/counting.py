"""Counting wrappers at drbot's adapter interface: the Kube every Kubernetes call goes through,
each ObjectStore, the verification and drill records and the job records. The readiness test
asserts with them that each source is read once; bench/readiness.py reports the counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from bot.config.inventory import load_inventory
from bot.config.settings import Settings
from bot.records.jobs import JobStore
from bot.worker.services import Services

STORE_READS = ("list", "list_prefixes", "read", "stat", "exists", "download")


class CountingKube:
    """The worker's Kube, counting each call by API method and arguments."""

    def __init__(self, kube: Any, counts: Counter[tuple[str, str]]) -> None:
        self._kube, self.counts = kube, counts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kube, name)

    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        self.counts[(getattr(fn, "__name__", "?"), repr((args, sorted(kw.items()))))] += 1
        return self._kube.call(fn, *args, **kw)


class CountingStore:
    def __init__(self, store: Any, kind: str, counts: Counter[tuple[str, str]]) -> None:
        self._store, self.kind, self.counts = store, kind, counts

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if name not in STORE_READS:
            return found

        def counted(*args: Any, **kw: Any) -> Any:
            self.counts[(f"{self.kind}.{name}", repr((args, sorted(kw.items()))))] += 1
            return found(*args, **kw)
        return counted


class CountingRecords:
    def __init__(self, records: Any, name: str, counts: Counter[tuple[str, str]]) -> None:
        self._records, self.name, self.counts = records, name, counts

    def load(self) -> Any:
        self.counts[(f"{self.name}.load", "")] += 1
        return self._records.load()


class CountingServices(Services):
    def __init__(self, settings: Settings, counts: Counter[tuple[str, str]]) -> None:
        super().__init__(settings, load_inventory(settings.inventory))
        self.counts = counts
        self.__dict__["kube"] = CountingKube(Services.kube.func(self), counts)  # type: ignore[attr-defined]
        self.__dict__["verifications"] = CountingRecords(
            Services.verifications.func(self), "verifications", counts)  # type: ignore[attr-defined]
        self.__dict__["drills"] = CountingRecords(Services.drills.func(self), "drills", counts)  # type: ignore[attr-defined]

    def store(self, kind: str) -> Any:
        return CountingStore(super().store(kind), kind, self.counts)


class CountingJobs(JobStore):
    def __init__(self, *args: Any, counts: Counter[tuple[str, str]]) -> None:
        super().__init__(*args)
        self.counts = counts

    def recent(self, limit: int = 10) -> list[str]:
        self.counts[("jobs.recent", "")] += 1
        return super().recent(limit)

    def get(self, job_id: str) -> Any:
        self.counts[("jobs.get", job_id)] += 1
        return super().get(job_id)


def sources(counts: Counter[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """Per source (API method or store call): how many distinct reads, the most repeats."""
    out: dict[str, tuple[int, int]] = {}
    for (name, _), n in counts.items():
        distinct, most = out.get(name, (0, 0))
        out[name] = (distinct + 1, max(most, n))
    return out

"""A readiness report reads each source once, however many preflights ask the same thing: counted
by wrappers at drbot's adapter interface (the Kube every Kubernetes call goes through, each
ObjectStore, the verification and drill records, the job records), against the simulated lab.
And it never writes: a write through the report's view of the cluster is refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.errors import AdapterError
from bot.config.inventory import load_inventory
from bot.config.settings import Settings
from bot.readiness import report
from bot.readiness.readonce import ReadOnceKube
from bot.records.jobs import JobStore
from bot.records.signing import Signer
from bot.runtime import connect
from bot.worker.services import Services
from lab import Lab
from lab.fakes.frontend import KEY

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


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    with Lab(tmp_path / "lab", time_scale=0.1) as lab:
        for key, value in {**lab.env, "REDIS_URL": redis_url, "DRBOT_SIGNING_KEY": KEY,
                           "DRBOT_REDIS_ALLOW_NO_PASSWORD": "true"}.items():
            monkeypatch.setenv(key, value)
        yield Settings()


def test_each_source_is_read_once(settings: Settings) -> None:
    counts: Counter[tuple[str, str]] = Counter()
    services = CountingServices(settings, counts)
    client = connect(settings, patient=True)
    jobs = CountingJobs(client, Signer(settings.key()), counts=counts)
    built = report.build(services, jobs)
    assert built.objects and built.chart is not None
    repeated = {key: n for key, n in counts.items() if n > 1}
    assert repeated == {}
    read = {name for name, _ in counts}
    # what the nodes' and hosts' preflights and the backup facts all ask for, listed once
    for needed in ("list_node", "list_namespaced_custom_object", "list_cluster_custom_object",
                   "longhorn.read", "longhorn.list", "cnpg.list_prefixes",
                   "verifications.load", "drills.load", "jobs.recent"):
        assert needed in read, needed
    lists = Counter(name for name, _ in counts if name.startswith("list_"))
    assert lists["list_node"] == 1  # 5 node preflights and 2 host preflights share it


def test_the_view_of_the_cluster_refuses_writes(settings: Settings) -> None:
    from adapters.kubernetes import nodes

    view = ReadOnceKube(Services(settings, load_inventory(settings.inventory)).kube)
    with pytest.raises(AdapterError, match="only reads; patch_node refused"):
        nodes.cordon(view, "k3s-agent-1")  # type: ignore[arg-type]
    assert not nodes.get_node(view, "k3s-agent-1").unschedulable  # type: ignore[arg-type]

"""A readiness report reads each source once, however many preflights ask the same thing: counted
by wrappers at drbot's adapter interface (the Kube every Kubernetes call goes through, each
ObjectStore, the verification and drill records, the job records), against the simulated lab.
And it never writes: a write through the report's view of the cluster is refused. `drbot
readiness` prints the report and writes the picture."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.errors import AdapterError
from bot.config.inventory import load_inventory
from bot.config.settings import Settings
from bot.readiness import report
from bot.readiness.readonce import ReadOnceKube
from bot.records.signing import Signer
from bot.runtime import connect
from bot.worker.services import Services
from lab import Lab
from lab.counting import CountingJobs, CountingServices
from lab.fakes.frontend import KEY
from lab.fakes.redis import RedisServer


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
             ) -> Iterator[Settings]:
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    redis_server.client().flushall()
    redis_url = redis_server.url
    with Lab(tmp_path_factory.mktemp("readiness") / "lab", time_scale=0.1) as lab:
        saved = dict(os.environ)
        os.environ.update({**lab.env, "REDIS_URL": redis_url, "DRBOT_SIGNING_KEY": KEY,
                           "DRBOT_REDIS_ALLOW_NO_PASSWORD": "true"})
        try:
            yield Settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)


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


def test_the_cli_prints_the_report_and_writes_the_picture(settings: Settings, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    from PIL import Image

    from bot.cli import main

    png = tmp_path / "out.png"
    code = main(["readiness", "--png", str(png)])
    out = capsys.readouterr().out
    assert code == 1  # the lab's drbot runs on k3s-agent-2: scenarios 2 to 4 cannot run now
    assert out.startswith("DR readiness as of ") and "Scenario 4, the whole cluster" in out
    assert out.rstrip().endswith(f"picture: {png}")
    assert Image.open(png).format == "PNG"

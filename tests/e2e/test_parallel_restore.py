"""Restoring twenty volumes at once (handlers/parallel_restore.py) against the lab's Longhorn.

The lab's Longhorn runs at most ``concurrent-backup-restore-per-node-limit`` restores per node,
holds the others and counts, per node, the most restores ever asked of it at once
(``restore_peak``); a restore takes time in proportion to the volume's size. The tests set that
setting to 2 on the lab's five nodes, so twenty volumes need at least two rounds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.errors import AdapterError, Cancelled
from adapters.kubernetes import longhorn
from adapters.kubernetes.client import Kube
from adapters.progress import Hooks, Progress
from bot.config.inventory import Inventory
from bot.runbook import StepContext
from handlers import parallel_restore
from lab import Lab, Timings, world
from lab.seed.longhorn import volume_objects
from lab.store import longhorn_volume_objects
from lab.world import VolumeSpec
from tests.support import wait_until

NS = "bulk"
SIZES = [1, 12, 3, 8, 2, 20, 5, 1, 9, 4, 16, 2, 6, 3, 10, 1, 7, 2, 14, 4]  # GiB, mixed
LIMIT = 2
RUN = 180.0


def spec(i: int, size: int) -> VolumeSpec:
    return VolumeSpec(f"vol-{i:02d}", NS, size, None, (("k3s-server-1", True),), (0.1,))


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lab]:
    # slow enough per GiB that a restore is seen running, short enough for a loaded machine;
    # a test that must see restores pile up passes a longer time (indirect parametrization)
    per_gib = getattr(request, "param", 1.0)
    with Lab(tmp_path / "lab", time_scale=0.1, timings=Timings(restore_per_gib=per_gib)) as running:
        yield running


def store_volumes(lab: Lab, now: datetime) -> None:
    """The twenty volumes' cfgs in the lab's store: Longhorn's sync deletes a Backup or
    BackupVolume whose store entry is missing (backup_volume_controller.go)."""
    import boto3

    assert lab.paths is not None
    creds = dict(line.split("=", 1) for line in lab.paths.s3_credentials.read_text().split())
    s3 = boto3.client("s3", endpoint_url=lab.s3_url, region_name=world.REGION,
                      aws_access_key_id=creds["access_key"],
                      aws_secret_access_key=creds["secret_key"])
    for i, size in enumerate(SIZES):
        for key, body in longhorn_volume_objects(spec(i, size), now, blocks=False).items():
            s3.put_object(Bucket=world.BUCKETS["longhorn"], Key=key, Body=body)


@pytest.fixture
def kube(lab: Lab) -> Iterator[Kube]:
    now = datetime.now(UTC)
    store_volumes(lab, now)
    lab.world.put([{"apiVersion": "longhorn.io/v1beta2", "kind": "Setting",
                    "metadata": {"name": "concurrent-backup-restore-per-node-limit",
                                 "namespace": longhorn.NS}, "value": str(LIMIT)},
                   *(obj for i, size in enumerate(SIZES) for obj in volume_objects(spec(i, size), now)
                     if obj["kind"] in ("Backup", "BackupVolume"))])  # the store's, synced
    client = Kube(lab.kubeconfig)
    yield client
    client.close()


def wanted(kube: Kube) -> list[parallel_restore.Wanted]:
    return [parallel_restore.Wanted(b, b.pvc_namespace, b.pvc)
            for b in longhorn.list_backups(kube) if b.pvc_namespace == NS]


def step_for(kube: Kube, lines: list[Progress], stop: threading.Event | None = None,
             **restores: Any) -> StepContext:
    inventory = Inventory.model_validate({"restores": restores})
    hooks = Hooks(report=lines.append, cancelled=stop.is_set if stop else lambda: False)
    return StepContext("job1", "restore volumes", {}, hooks, SimpleNamespace(kube=kube),  # type: ignore[arg-type]
                       inventory)


def restored(lab: Lab) -> list[str]:
    return [f"vol-{i:02d}" for i in range(len(SIZES))
            if (lab.world.kube_object("v1", "persistentvolumeclaims", NS, f"vol-{i:02d}") or {})
            .get("spec", {}).get("volumeName") == f"restore-{NS}-vol-{i:02d}"]


def starts(lab: Lab) -> dict[str, int]:
    with lab.world.state.lock:
        return dict(lab.world.state.restore_starts)


def peak(lab: Lab) -> int:
    with lab.world.state.lock:
        return max(lab.world.state.restore_peak.values(), default=0)


def test_twenty_restores_never_exceed_the_limit_and_the_card_reaches_20_of_20(
        lab: Lab, kube: Kube) -> None:
    lines: list[Progress] = []
    result = parallel_restore.restore_all(step_for(kube, lines), wanted(kube), RUN, poll=0.2)
    assert len(restored(lab)) == 20
    assert peak(lab) == LIMIT  # the limit was used, never exceeded
    assert result["limit"] == {"per_node": LIMIT, "nodes": 5,
                               "source": "Longhorn setting concurrent-backup-restore-per-node-limit"}
    assert set(starts(lab).values()) == {1}
    cards = [p.message for p in lines if p.task == "restore"]
    assert cards[-1].startswith("20/20 volumes restored (")
    assert any(c.startswith("0/20") and "restoring 10:" in c for c in cards)
    order = next(p.message for p in lines if "order:" in p.message).split("order: ")[1]
    assert order.split(", ")[:2] == [f"{NS}/vol-05", f"{NS}/vol-10"]  # largest first


def test_inventory_priorities_go_first(lab: Lab, kube: Kube) -> None:
    items = parallel_restore.order(wanted(kube), [f"{NS}/vol-07", f"{NS}/vol-1*"])
    assert [w.pvc for w in items[:7]] == ["vol-07", "vol-10", "vol-18", "vol-14", "vol-16",
                                          "vol-12", "vol-19"]  # each pattern largest first
    assert items[11].pvc == "vol-05"  # then the largest of the rest


@pytest.mark.parametrize("lab", [1000.0], indirect=True)  # no restore ends during the test
def test_the_lab_counts_restores_beyond_its_limit(lab: Lab, kube: Kube) -> None:
    """An override above the cluster's setting: the lab holds the extra restores and its count
    shows the setting exceeded (what the other tests rely on to fail). Restores that never end
    make the pile-up certain however slowly a loaded machine creates the volumes."""
    stop, lines = threading.Event(), []
    step = step_for(kube, lines, stop, per_node_limit=4)
    threading.Thread(target=lambda: wait_until(lambda: len(starts(lab)) >= 12, RUN) and stop.set(),
                     daemon=True).start()
    with pytest.raises(Cancelled):
        parallel_restore.restore_all(step, wanted(kube)[:12], RUN, poll=0.2)
    assert len(starts(lab)) == 12  # all twelve asked of five nodes at once
    assert peak(lab) > LIMIT


def test_one_failed_restore_leaves_the_others_and_the_retry_restores_only_it(
        lab: Lab, kube: Kube) -> None:
    bad = next(w for w in wanted(kube) if w.pvc == "vol-07")
    with lab.world.state.lock:
        lab.world.state.failing_backups.add(bad.backup.name)
    lines: list[Progress] = []
    with pytest.raises(AdapterError) as failure:
        parallel_restore.restore_all(step_for(kube, lines), wanted(kube), RUN, poll=0.2)
    text = str(failure.value)
    assert text.startswith("1 of 20 volume(s) not restored (19 done)")
    assert f"{NS}/vol-07: failed (Longhorn failed to restore it: lab: " in text
    assert all(f"{NS}/vol-{i:02d}: restored" in text for i in range(20) if i != 7)
    assert "/dr retry job1" in text
    assert len(restored(lab)) == 19 and "vol-07" not in restored(lab)

    with lab.world.state.lock:
        lab.world.state.failing_backups.clear()
    result = parallel_restore.restore_all(step_for(kube, lines), wanted(kube), RUN, poll=0.2)
    assert result["started"] == [f"{NS}/vol-07"]
    assert len(restored(lab)) == 20
    counts = starts(lab)
    assert counts.pop(f"restore-{NS}-vol-07") == 2 and set(counts.values()) == {1}


def test_cancel_names_the_restores_longhorn_still_runs(lab: Lab, kube: Kube) -> None:
    stop, lines = threading.Event(), []
    step = step_for(kube, lines, stop)
    threading.Thread(target=lambda: wait_until(lambda: len(starts(lab)) >= 3, RUN) and stop.set(),
                     daemon=True).start()
    with pytest.raises(Cancelled) as cancelled:
        parallel_restore.restore_all(step, wanted(kube), RUN, poll=0.2)
    text = str(cancelled.value)
    assert "Longhorn still restores bulk/vol-05 (restore-bulk-vol-05)" in text
    assert "cannot be stopped cleanly" in text and "not started: " in text


SCHEDULER = textwrap.dedent("""
    import sys, types
    from adapters.kubernetes import longhorn
    from adapters.kubernetes.client import Kube
    from adapters.progress import Hooks
    from bot.config.inventory import Inventory
    from bot.runbook import StepContext
    from handlers import parallel_restore
    kube = Kube(sys.argv[1])
    wanted = [parallel_restore.Wanted(b, b.pvc_namespace, b.pvc)
              for b in longhorn.list_backups(kube) if b.pvc_namespace == "bulk"]
    step = StepContext("job1", "restore volumes", {}, Hooks(), types.SimpleNamespace(kube=kube),
                       Inventory())
    parallel_restore.restore_all(step, wanted, 600, poll=0.2)
""")


def test_after_a_sigkill_the_retry_adopts_the_restores_longhorn_runs(lab: Lab, kube: Kube,
                                                                     tmp_path: Path) -> None:
    """The process running the scheduler dies mid-phase (SIGKILL); the next run starts no
    restore twice: those Longhorn runs are adopted, those done get their PVC."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", SCHEDULER, str(lab.kubeconfig)], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        wait_until(lambda: len(starts(lab)) >= 10 or proc.poll() is not None, RUN,
                   "ten restores started")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # what the killed run created (the lab may not have begun restoring each of them yet)
    before = {o["metadata"]["name"] for o in lab.world.kube_objects("longhorn.io/v1beta2", "volumes")
              if o["metadata"]["name"].startswith(f"restore-{NS}-")}
    lines: list[Progress] = []
    result = parallel_restore.restore_all(step_for(kube, lines), wanted(kube), RUN, poll=0.2)
    assert len(restored(lab)) == 20
    assert set(starts(lab).values()) == {1}  # none started again
    adopted = sorted(f"{NS}/{v.removeprefix(f'restore-{NS}-')}" for v in before)
    assert sorted(result["adopted"]) == adopted
    assert sorted(result["started"]) == sorted({w.ref for w in wanted(kube)} - set(adopted))
    assert any("adopted restores Longhorn was already running" in p.message for p in lines)


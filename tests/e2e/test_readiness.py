"""/dr readiness against the simulated homelab through a real worker: the progress line comes
first, each scenario's preflight is judged on live state, the RPO of an object follows its last
*passing* drill, an RTO is "unknown" until something was measured and then a number with its
basis, and the picture posted in the thread is a PNG whose size and rows match the objects, with
no backup mark on a day the lab has none."""

from __future__ import annotations

import io
import time
from datetime import datetime
from typing import Any

from PIL import Image

from adapters.kubernetes.drills import CheckResult, DrillResult
from bot.readiness.chart import DPI, MARGIN_IN, ROW_IN, STYLE, WIDTH_IN, Geometry
from bot.readiness.rpo import Mark
from bot.watch import drilled
from bot.watch.evaluate import span
from bot.watch.scheduler import DOCTOR_INTERVAL as DAY
from bot.watch.scheduler import READINESS_COMMAND, WatchScheduler
from handlers.readiness import FIRST_LINE, STEP
from lab import Lab
from tests.bot.harness import Harness
from tests.support import wait_until


def run_readiness(drbot: Harness) -> tuple[str, dict[str, Any]]:
    job_id = drbot.say("/dr readiness", who="alice").job_id
    assert job_id
    job = drbot.wait_status(job_id, "succeeded", timeout=180)
    step = next(s for s in job.steps if s.name == STEP)
    return job_id, step.result


def volume_of(lab: Lab, pvc: str) -> str:
    for v in lab.world.kube_objects("longhorn.io/v1beta2", "volumes"):
        if v["status"].get("kubernetesStatus", {}).get("pvcName") == pvc:
            return str(v["metadata"]["name"])
    raise AssertionError(f"no volume for {pvc}")


def backups_of(lab: Lab, volume: str) -> list[tuple[float, str]]:
    """(taken at, name) of the volume's backups, oldest first."""
    found = [(datetime.fromisoformat(b["status"]["snapshotCreatedAt"].replace("Z", "+00:00"))
              .timestamp(), b["metadata"]["name"])
             for b in lab.world.kube_objects("longhorn.io/v1beta2", "backups")
             if b["metadata"]["labels"].get("backup-volume") == volume]
    return sorted(found)


def colour(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def marks_near(image: Image.Image, x: int, y: int, radius: int = 4) -> set[tuple[int, int, int]]:
    """The marker colours among the pixels around (x, y)."""
    wanted = {colour(style[1]) for style in STYLE.values()}
    seen = {image.getpixel((x + dx, y + dy))[:3] for dx in range(-radius, radius + 1)
            for dy in range(-radius, radius + 1)}
    return seen & wanted


def test_readiness_unmeasured_then_measured_and_its_picture(lab: Lab, drbot_lab: Harness
                                                            ) -> None:
    job_id, result = run_readiness(drbot_lab)
    events = drbot_lab.rt.events.read(job_id)
    progress = [e.message for e in events if e.type == "progress"]
    assert progress and progress[0] == FIRST_LINE  # the line before any reading
    text = result["text"]
    assert "RTO /dr reconcile: unknown (no succeeded /dr reconcile run recorded)" in text
    assert "restore every Longhorn volume: unknown (no drill or verification measured" in text
    assert "✗ node k3s-server-3" not in text  # every volume keeps a replica elsewhere

    # the picture: a PNG, one row per object, no mark where the lab has no backup
    name, data, caption = wait_until(lambda: (drbot_lab.frontend.files.get(job_id) or [None])[0],
                                     30, "the picture in the thread")
    assert name.endswith(".png") and "Backup timeline" in caption
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    rows = result["chart"]["rows"]
    assert len(rows) == result["objects"] == 9  # 6 volumes, 2 CNPG clusters, the etcd copies
    assert image.size == (round(WIDTH_IN * DPI), round((MARGIN_IN + ROW_IN * len(rows)) * DPI))
    geometry = Geometry(len(rows), result["chart"]["days"], result["chart"]["at"])
    image = image.convert("RGB")
    row = rows.index("longhorn apps/archive")
    taken = backups_of(lab, volume_of(lab, "archive"))
    newest = taken[-1][0]
    assert geometry.now - newest > 2 * 86400  # the lab's archive volume: nothing for days
    assert marks_near(image, *geometry.pixel(row, newest)) == {colour(STYLE[Mark.TAKEN][1])}
    gap = geometry.now - 86400  # a day ago: inside the policy window, no backup
    assert marks_near(image, *geometry.pixel(row, gap)) == set()

    # a measured run of scenario 1's runbook gives its RTO a number and a basis
    reconcile = drbot_lab.say("/dr reconcile flux-system/flux-system", who="alice").job_id
    assert reconcile
    ran = drbot_lab.wait_status(reconcile, "succeeded", timeout=120)
    seconds = sum(s.seconds or 0 for s in ran.steps)
    _, after = run_readiness(drbot_lab)
    assert (f"RTO /dr reconcile: {span(seconds)} (the /dr reconcile run of job {reconcile}, "
            in after["text"])


def fail_replicas(lab: Lab, volume: str, keep_on: str) -> None:
    """Every replica of ``volume`` but the one on ``keep_on`` fails: Longhorn sets the
    replica's spec.failedAt and its state to error (longhorn-manager
    controller/volume_controller.go, ReplicaSpec.FailedAt in k8s/pkg/apis/longhorn/v1beta2)."""
    changed = []
    for r in lab.world.kube_objects("longhorn.io/v1beta2", "replicas"):
        if r["spec"].get("volumeName") == volume and r["spec"].get("nodeID") != keep_on:
            r["spec"]["failedAt"] = "2026-12-01T00:00:00Z"
            r["status"]["currentState"] = "error"
            changed.append(r)
    assert changed
    lab.world.put(changed)


def test_readiness_last_replica_and_failed_drill(lab: Lab, drbot_lab: Harness) -> None:
    gitea = volume_of(lab, "gitea-data")
    fail_replicas(lab, gitea, keep_on="k3s-server-3")
    web = backups_of(lab, volume_of(lab, "web-data"))
    (older_at, older), (_, newest) = web[-2], web[-1]
    size = 5 * 2**30
    # a drill restored the older backup and passed; the latest drill, of the newest, failed
    drilled.record(drbot_lab.redis, DrillResult(
        "longhorn", "apps/web-data", older, time.time() - 3600, restore_seconds=40.0,
        duration=60.0, size=size, checks=[CheckResult("files and bytes", True, "4 files")]))
    drilled.record(drbot_lab.redis, DrillResult(
        "longhorn", "apps/web-data", newest, time.time() - 600, restore_seconds=50.0,
        duration=70.0, size=size, checks=[CheckResult("README", False, "expected x, got y")]))

    _, result = run_readiness(drbot_lab)
    text = result["text"]
    assert result["runnable"]["2"] is False
    refused = next(line for line in text.splitlines() if "✗ node k3s-server-3:" in line)
    assert "last healthy replica" in refused and "apps/gitea-data" in refused
    assert "✗ node k3s-server-1" not in text  # its replicas of gitea failed; nothing is lost
    web_line = next(line for line in text.splitlines()
                    if line.startswith("  longhorn apps/web-data:"))
    proven = web_line.split("proven ", 1)[1].split(" old", 1)[0]
    # the previous good drill's backup, not the newest one (age rendered when the report ran)
    assert f"(backup {older}, drilled)" in web_line
    assert proven == span(result["chart"]["at"] - older_at)
    assert f"latest drill of backup {newest} failed" in web_line
    # a restore time was measured: scenario 4's restores are a number, scaled by size
    restores = next(line for line in text.splitlines()
                    if "restore every Longhorn volume:" in line)
    assert "unknown" not in restores and "scaled by size from 1 drill restore(s)" in restores


def test_the_weekly_report_goes_to_the_alert_channels_with_its_picture(drbot_lab: Harness
                                                                       ) -> None:
    scheduler = WatchScheduler(drbot_lab.rt)
    every = drbot_lab.rt.inventory.backups.readiness_every
    assert every == 7  # the default
    day = (int(time.time() // DAY) // every + 1) * every
    assert [scheduler.readiness_due(d * DAY + 60) for d in range(day - 1, day + 2)] == [
        False, True, False]
    job_id = scheduler.tick(day * DAY + 60, READINESS_COMMAND, DAY)
    assert job_id and scheduler.tick(day * DAY + 7200, READINESS_COMMAND, DAY) is None
    drbot_lab.wait_status(job_id, "succeeded", timeout=180)
    posted = wait_until(lambda: [a for a in drbot_lab.frontend.alerts
                                 if a.startswith("DR readiness as of")], 30, "the report")
    assert len(posted) == 1 and "Scenario 4, the whole cluster" in posted[0]
    (name, data, _), = wait_until(lambda: drbot_lab.frontend.files.get("alert"), 30,
                                  "the picture under it")
    assert name.startswith("readiness-") and Image.open(io.BytesIO(data)).format == "PNG"

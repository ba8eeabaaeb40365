"""/dr drill cnpg against the simulated homelab through a real worker: a recovery Cluster in a
drill namespace that the lab's CNPG operator recovers from the store, SQL through the exec API,
the report, and nothing left afterwards; a check that returns the wrong value and a Cluster that
never becomes Ready fail the drill with the reason and still leave nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.watch import drilled
from lab import Lab
from tests.bot.harness import Harness
from tests.e2e.test_drill import leftovers

TARGET = "databases/pg-main"


def cnpg_leftovers(lab: Lab) -> list[str]:
    """Drill namespaces, and anything a drill made in one: Clusters, Secrets, pods."""
    found = leftovers(lab)
    for api, plural in (("postgresql.cnpg.io/v1", "clusters"), ("v1", "secrets"),
                        ("v1", "pods"), ("barmancloud.cnpg.io/v1", "objectstores")):
        found += [f"{plural} {o['metadata']['namespace']}/{o['metadata']['name']}"
                  for o in lab.world.kube_objects(api, plural)
                  if str(o["metadata"].get("namespace", "")).startswith("drbot-drill-")]
    return found


def test_a_cnpg_drill_recovers_checks_reports_and_leaves_nothing(lab: Lab, drbot_lab: Harness
                                                                 ) -> None:
    source_before = lab.world.kube_object("postgresql.cnpg.io/v1", "clusters", "databases",
                                          "pg-main")
    job_id = drbot_lab.say(f"/dr drill cnpg {TARGET}", who="alice").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "succeeded", timeout=120)
    text = drbot_lab.wait_reply(job_id, "drill passed", timeout=30)
    assert "✓ orders: 1200" in text
    assert "✓ newest order: newest data " in text
    kept = drilled.load(drbot_lab.redis)[f"cnpg:{TARGET}"]
    assert kept.ok and kept.restore_seconds is not None and kept.recovered_to
    assert f"recovered in {kept.restore_seconds:.1f}s, to {kept.recovered_to}" in text
    assert cnpg_leftovers(lab) == []
    # What the lab's operator received: one instance, recovering server pg-main from the
    # source's store through a copy of its Secret, archiving nowhere.
    received = [c for c in lab.world.state.cnpg_recoveries
                if c["metadata"]["namespace"] == f"drbot-drill-{job_id}"]
    assert len(received) == 1
    spec = received[0]["spec"]
    assert "backup" not in spec and "plugins" not in spec
    assert spec["instances"] == 1
    assert spec["bootstrap"] == {"recovery": {"source": "drill-source"}}
    (external,) = spec["externalClusters"]
    assert external["barmanObjectStore"]["serverName"] == "pg-main"
    assert external["barmanObjectStore"]["destinationPath"] == "s3://drbot-lab-cnpg/"
    assert "wal" not in external["barmanObjectStore"]
    assert external["barmanObjectStore"]["s3Credentials"]["accessKeyId"] == {
        "name": "drbot-drill-store", "key": "ACCESS_KEY_ID"}  # drbot's key, not the source's
    # the checks ran through pods/exec as read-only psql, and the source was only read
    runs = [argv for pod, argv in lab.world.state.execs if pod.startswith(f"drbot-drill-{job_id}/")]
    assert [r[r.index("-c") + 3] for r in runs] == ["SELECT count(*) FROM orders",
                                                     "SELECT max(placed_at) FROM orders"]
    assert all(r[:1] == ["psql"] and "BEGIN TRANSACTION READ ONLY" in r for r in runs)
    after = lab.world.kube_object("postgresql.cnpg.io/v1", "clusters", "databases", "pg-main")
    assert after is not None and source_before is not None
    assert after["spec"] == source_before["spec"]

    # A recovery that lacks its newest 200 orders: the check says expected and got.
    with lab.world.state.lock:
        lab.world.state.cnpg_lost_rows["pg-main"] = 200
    job_id = drbot_lab.say(f"/dr drill cnpg {TARGET}", who="alice").job_id
    assert job_id
    job = drbot_lab.wait_status(job_id, "failed", timeout=120)
    assert "drill FAILED" in (job.error or "")
    assert "✗ orders: expected '1200', got '1000'" in (job.error or "")
    assert cnpg_leftovers(lab) == []
    kept = drilled.load(drbot_lab.redis)[f"cnpg:{TARGET}"]
    assert not kept.ok and kept.last_ok_at is not None  # the earlier pass is kept


@pytest.fixture
def drbot_short(lab: Lab, redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    """drbot whose drills wait at most 5 s for the recovery Cluster to be Ready."""
    inventory = yaml.safe_load(lab.inventory_path.read_text())
    inventory["backups"]["drill"]["cnpg_ready_seconds"] = 5
    path = tmp_path / "inventory-short.yaml"
    path.write_text(yaml.safe_dump(inventory))
    harness = Harness(redis_url, tmp_path, **{**lab.env, "DRBOT_POLICY": str(lab.policy_path),
                                              "DRBOT_PLUGINS": "[]", "DRBOT_INVENTORY": str(path)})
    harness.start_worker()
    yield harness
    harness.close()


def test_a_never_ready_cluster_fails_the_drill_with_its_phase_and_leaves_nothing(
        lab: Lab, drbot_short: Harness) -> None:
    with lab.world.state.lock:
        lab.world.state.cnpg_never_ready.add("pg-main")
    job_id = drbot_short.say(f"/dr drill cnpg {TARGET}", who="alice").job_id
    assert job_id
    job = drbot_short.wait_status(job_id, "failed", timeout=120)
    assert "drill FAILED" in (job.error or "")
    assert ("the recovery Cluster did not become Ready within 5s (phase 'Setting up primary': "
            "Cluster Is Not Ready)") in (job.error or "")
    assert cnpg_leftovers(lab) == []
    assert not drilled.load(drbot_short.redis)[f"cnpg:{TARGET}"].ok

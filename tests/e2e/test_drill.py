"""/dr drill against the simulated homelab through a real worker: the restore into a drill
namespace, the check pod the lab's kubelet runs on the volume's files, the report, and nothing
left afterwards; failures (a restore that fails, a check that returns the wrong value) fail the
drill with the reason and still leave nothing; a worker killed mid-drill is swept up."""

from __future__ import annotations

from pathlib import Path

from bot.watch import drilled
from lab import Lab
from tests.bot.harness import Harness
from tests.support import wait_until

DRILL_LABEL = "drbot.io/drill"


def leftovers(lab: Lab) -> list[str]:
    """Every drill namespace, PV and Longhorn volume in the lab."""
    found = [n["metadata"]["name"] for n in lab.world.kube_objects("v1", "namespaces")
             if (n["metadata"].get("labels") or {}).get(DRILL_LABEL)]
    found += [p["metadata"]["name"] for p in lab.world.kube_objects("v1", "persistentvolumes")
              if p["metadata"]["name"].startswith("drbot-drill-")]
    found += [v["metadata"]["name"]
              for v in lab.world.kube_objects("longhorn.io/v1beta2", "volumes")
              if v["metadata"]["name"].startswith("drbot-drill-")]
    return found


def test_a_drill_restores_checks_reports_and_leaves_nothing(lab: Lab, drbot_lab: Harness
                                                            ) -> None:
    job_id = drbot_lab.say("/dr drill longhorn apps/web-data", who="alice").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "succeeded", timeout=120)
    text = drbot_lab.wait_reply(job_id, "drill passed", timeout=30)
    assert "restored in" in text
    assert "✓ README: apps/web-data: files of the lab's volume" in text
    assert "✓ files and bytes: 4 files, " in text  # README and three data parts
    assert leftovers(lab) == []
    kept = drilled.load(drbot_lab.redis)["longhorn:apps/web-data"]
    assert kept.ok and kept.restore_seconds is not None and kept.last_ok_backup == kept.backup_id
    # the pod read the restored volume, not the source: its mount came from the drill claim
    runs = [argv for pod, argv in lab.world.state.pod_runs if pod.startswith("drbot-drill-")]
    assert len(runs) == 2
    source = lab.world.kube_object("v1", "persistentvolumeclaims", "apps", "web-data")
    assert source is not None and not source["metadata"].get("deletionTimestamp")


def test_a_wrong_check_value_fails_the_drill_and_leaves_nothing(lab: Lab, drbot_lab: Harness
                                                                ) -> None:
    backups = [b for b in lab.world.kube_objects("longhorn.io/v1beta2", "backups")
               if b["metadata"]["labels"].get("backup-volume", "").startswith("pvc-")]
    with lab.world.state.lock:  # every backup: whichever is newest restores other content
        lab.world.state.wrong_content_backups.update(b["metadata"]["name"] for b in backups)
    job_id = drbot_lab.say("/dr drill longhorn apps/web-data", who="alice").job_id
    assert job_id
    job = drbot_lab.wait_status(job_id, "failed", timeout=120)
    assert "drill FAILED" in (job.error or "")
    assert ("✗ README: expected \"apps/web-data: files of the lab's volume\", "
            "got 'lab: other data than was backed up'") in (job.error or "")
    assert leftovers(lab) == []


def test_a_failing_restore_fails_the_drill_with_longhorns_reason(lab: Lab, drbot_lab: Harness
                                                                 ) -> None:
    backups = [b["metadata"]["name"] for b in lab.world.kube_objects("longhorn.io/v1beta2",
                                                                     "backups")]
    with lab.world.state.lock:
        lab.world.state.failing_backups.update(backups)
    job_id = drbot_lab.say("/dr drill longhorn apps/web-data", who="alice").job_id
    assert job_id
    job = drbot_lab.wait_status(job_id, "failed", timeout=120)
    assert "Longhorn failed to restore volume drbot-drill-" in (job.error or "")
    assert "lab: the backup's blocks cannot be read" in (job.error or "")
    assert leftovers(lab) == []


def test_a_worker_killed_mid_drill_leaves_a_namespace_the_sweeper_removes(
        lab: Lab, drbot_lab: Harness) -> None:
    hold = lab.world.hold_kube("POST", r"/namespaces/drbot-drill-[^/]+/pods$")  # the check pod
    job_id = drbot_lab.say("/dr drill longhorn apps/web-data", who="alice").job_id
    assert job_id
    assert hold.reached.wait(120), "the drill never created its check pod"
    namespace = f"drbot-drill-{job_id}"
    assert namespace in leftovers(lab)  # restored, volume and PV in place
    drbot_lab.kill_workers()
    hold.release()
    drbot_lab.wait_status(job_id, "lost", timeout=60)  # the reaper saw the worker die
    drbot_lab.start_worker()
    wait_until(lambda: leftovers(lab) == [], 120, "the sweeper to remove the drill's namespace")
    sweeps = [drbot_lab.job(j) for j in drbot_lab.rt.store.recent(20)]
    sweeps = [j for j in sweeps if j.command == "drill-sweep"]
    assert len(sweeps) == 1 and sweeps[0].account == "system:scheduler"
    done = drbot_lab.wait_status(sweeps[0].id, "succeeded", timeout=30)
    assert f"namespace {namespace} (job {job_id} is over)" in str(done.steps[0].result)


def test_a_cancelled_drill_removes_what_it_made(lab: Lab, drbot_lab: Harness) -> None:
    hold = lab.world.hold_kube("POST", r"/namespaces/drbot-drill-[^/]+/pods$")
    job_id = drbot_lab.say("/dr drill longhorn apps/web-data", who="alice").job_id
    assert job_id
    assert hold.reached.wait(120), "the drill never created its check pod"
    assert f"drbot-drill-{job_id}" in leftovers(lab)
    drbot_lab.start_worker()  # the first one is busy with the drill
    status = drbot_lab.say("/dr status", who="alice").job_id
    assert status
    drbot_lab.wait_status(status, "succeeded", timeout=60)
    text = drbot_lab.wait_reply(status, "Drills in progress:", timeout=30)
    assert f"drbot-drill-{job_id}: longhorn apps/web-data, job {job_id}, deadline in" in text
    assert drbot_lab.say(f"/dr cancel {job_id}", who="alice").ok
    hold.release()
    drbot_lab.wait_status(job_id, "cancelled", timeout=60)
    assert leftovers(lab) == []


def test_a_retry_after_a_killed_worker_starts_clean_and_passes(lab: Lab, drbot_lab: Harness
                                                                ) -> None:
    hold = lab.world.hold_kube("POST", r"/namespaces/drbot-drill-[^/]+/pods$")
    job_id = drbot_lab.say("/dr drill longhorn apps/web-data", who="alice").job_id
    assert job_id
    assert hold.reached.wait(120), "the drill never created its check pod"
    drbot_lab.kill_workers()
    hold.release()
    drbot_lab.wait_status(job_id, "lost", timeout=60)
    drbot_lab.start_worker()
    assert drbot_lab.say(f"/dr retry {job_id}", who="alice").ok
    drbot_lab.wait_status(job_id, "succeeded", timeout=120)
    drbot_lab.wait_reply(job_id, "drill passed", timeout=30)
    # The retry removed the first attempt's namespace and made its own: both its check pods ran
    # anew (reusing the old namespace would have found the first pod, already run, and not run
    # it again); the first attempt's pod ran while its worker was dead (5 s to be declared lost).
    runs = [pod for pod, _ in lab.world.state.pod_runs if pod.startswith(f"drbot-drill-{job_id}")]
    assert sorted(runs) == sorted([f"drbot-drill-{job_id}/drill-check-0"] * 2
                                  + [f"drbot-drill-{job_id}/drill-check-1"])
    assert leftovers(lab) == []


def test_a_drill_is_refused_while_a_recovery_holds_the_cluster(drbot_lab: Harness) -> None:
    from bot.records.locks import shared

    assert drbot_lab.rt.locks.acquire("0badc0de", [shared("cluster")], ttl=60) is None
    reply = drbot_lab.say("/dr drill longhorn apps/web-data", who="alice")
    assert not reply.ok and reply.job_id is None
    assert "busy: cluster is held by job 0badc0de" in reply.text


def test_the_rotation_drills_the_never_drilled_pvc_and_records_it(
        lab: Lab, redis_url: str, tmp_path: Path) -> None:
    import yaml

    from bot.watch.scheduler import submit_system

    inventory = yaml.safe_load(lab.inventory_path.read_text())
    inventory["backups"]["drill_every"] = 7
    path = tmp_path / "inventory-rotation.yaml"
    path.write_text(yaml.safe_dump(inventory))
    harness = Harness(redis_url, tmp_path, **{**lab.env, "DRBOT_POLICY": str(lab.policy_path),
                                              "DRBOT_PLUGINS": "[]", "DRBOT_INVENTORY": str(path)})
    try:
        harness.start_worker()
        harness.redis.delete(drilled.RESULTS)
        # The PVCs never drilled come first, by name: archive's 50 GiB replica does not fit
        # the lab's disks (60 of 100 GiB free; Longhorn keeps 25 % free), which is kept as a
        # failed drill (its restore would fail as well), so the next run goes on to gitea-data.
        first = submit_system(harness.rt, "drill-next", "drill-next:test:1")
        assert first
        job = harness.wait_status(first, "failed", timeout=120)
        assert "lacks schedulable storage" in (job.error or "")
        second = submit_system(harness.rt, "drill-next", "drill-next:test:2")
        assert second
        harness.wait_status(second, "succeeded", timeout=120)
        records = drilled.load(harness.redis)
        assert set(records) == {"longhorn:apps/archive", "longhorn:apps/gitea-data"}
        assert not records["longhorn:apps/archive"].ok
        assert "lacks schedulable storage" in records["longhorn:apps/archive"].problem
        assert records["longhorn:apps/gitea-data"].ok
        assert leftovers(lab) == []
    finally:
        harness.close()

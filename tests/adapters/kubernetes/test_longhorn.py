"""Longhorn: volumes and replicas, dead-node cleanup, backups, restore, replica health."""

from __future__ import annotations

import pytest

from adapters.errors import AdapterError, Conflict, Refused, TimedOut
from adapters.kubernetes import longhorn
from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from adapters.kubernetes.longhorn._objects import engine_progress
from adapters.progress import Hooks
from lab.fakes.kube import (
    Reactor,
    StandaloneKube,
    add_lh_backup,
    add_lh_backup_target,
    add_lh_backup_volume,
    add_lh_node,
    add_lh_volume,
    backup_url,
)

NS = R.LONGHORN_NAMESPACE


def test_volumes_and_replica_health(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_volume(kube_emulator, "pvc-1", [("a", True), ("b", False)], pvc="data",
                  pvc_namespace="apps", robustness="degraded", last_backup="backup-1")
    kube_emulator.patch(R.LH_REPLICAS, "pvc-1-r-0", {"metadata": {
        "finalizers": ["longhorn.io"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}, NS)
    volume = longhorn.get_volume(kube, "pvc-1")
    assert (volume.pvc, volume.pvc_namespace, volume.last_backup) == ("data", "apps", "backup-1")
    assert [(r.node, r.healthy) for r in volume.replicas] == [("a", False), ("b", False)]
    assert volume.robustness == "degraded" and volume.number_of_replicas == 2


def test_volumes_losing_last_replica(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_volume(kube_emulator, "safe", [("a", True), ("b", True)])
    add_lh_volume(kube_emulator, "only-on-a", [("a", True), ("b", False)])
    add_lh_volume(kube_emulator, "failed-on-a", [("a", False)])
    add_lh_volume(kube_emulator, "elsewhere", [("c", True)])
    assert longhorn.volumes_losing_last_replica(kube, "a") == ["failed-on-a", "only-on-a"]
    assert longhorn.volumes_losing_last_replica(kube, "c") == ["elsewhere"]
    assert longhorn.volumes_losing_last_replica(kube, "z") == []


def test_clean_dead_node(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_volume(kube_emulator, "v1", [("dead", False), ("b", True)], pvc="web-data",
                  pvc_namespace="apps")
    add_lh_volume(kube_emulator, "v2", [("b", True), ("c", True)])
    add_lh_node(kube_emulator, "dead", ready=False, reason="KubernetesNodeGone")
    seen, hooks = _reported()
    result = longhorn.clean_dead_node(kube, "dead", hooks, timeout=5, poll=0.05)
    assert result.deleted_replicas == ["v1-r-0"] and result.node_deleted
    assert seen[0] == "Deleted the failed replica of apps/web-data on dead"  # not v1-r-0 of v1
    assert [r.name for r in longhorn.list_replicas(kube)] == ["v1-r-1", "v2-r-0", "v2-r-1"]
    assert kube_emulator.get(R.LH_NODES, "dead", NS) is None
    assert {"spec": {"allowScheduling": False}} in kube_emulator.sent("patch")


def test_clean_dead_node_refuses_to_lose_the_last_copy(
    kube_emulator: StandaloneKube, kube: Kube
) -> None:
    add_lh_volume(kube_emulator, "v1", [("dead", True), ("b", False)], pvc="media",
                  pvc_namespace="apps")
    add_lh_volume(kube_emulator, "v2", [("dead", False), ("b", True)])
    add_lh_node(kube_emulator, "dead", ready=False)
    with pytest.raises(Refused, match="last copy of Longhorn volume\\(s\\) apps/media \\(v1\\);"):
        longhorn.clean_dead_node(kube, "dead", timeout=1, poll=0.05)
    assert len(longhorn.list_replicas(kube)) == 4
    assert kube_emulator.get(R.LH_NODES, "dead", NS) is not None


def test_clean_dead_node_stops_at_a_leftover_engine(
    kube_emulator: StandaloneKube, kube: Kube
) -> None:
    add_lh_node(kube_emulator, "dead", ready=False)
    kube_emulator.create(R.LH_ENGINES, {"metadata": {"name": "v1-e-0", "namespace": NS},
                                        "spec": {"nodeID": "dead", "volumeName": "v1"}})
    with pytest.raises(Conflict, match="engine\\(s\\) v1-e-0 on node dead"):
        longhorn.clean_dead_node(kube, "dead", timeout=1, poll=0.05)
    assert kube_emulator.get(R.LH_NODES, "dead", NS)["spec"]["allowScheduling"] is False


def test_backups_backup_volumes_and_target(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_backup(kube_emulator, "backup-old", "vol", created="2026-01-01T00:00:00Z")
    add_lh_backup(kube_emulator, "backup-new", "vol", created="2026-01-02T00:00:00Z",
                  pvc="data", pvc_namespace="apps")
    add_lh_backup(kube_emulator, "backup-running", "vol", state="InProgress",
                  created="2026-01-03T00:00:00Z")
    add_lh_backup(kube_emulator, "backup-other", "other")
    latest = longhorn.latest_backup(kube, "vol")
    assert latest is not None and latest.name == "backup-new"
    assert (latest.pvc, latest.pvc_namespace) == ("data", "apps")
    assert latest.url == backup_url("backup-new", "vol")
    assert [b.name for b in longhorn.list_backups(kube, "vol")] == [
        "backup-old", "backup-new", "backup-running"]
    assert longhorn.latest_backup(kube, "none") is None

    add_lh_backup_volume(kube_emulator, "vol", last_backup="backup-new",
                         last_backup_at="2026-01-02T00:00:00Z", v18=True)
    add_lh_backup_volume(kube_emulator, "legacy", last_backup="b1",
                         last_backup_at="2025-12-01T00:00:00Z", v18=False)
    bvs = longhorn.list_backup_volumes(kube)
    assert [(b.name, b.volume, b.last_backup) for b in bvs] == [
        ("legacy", "legacy", "b1"), ("other-5b2e8f0c", "other", "backup-other"),
        ("vol-5b2e8f0c", "vol", "backup-new")]
    assert {b.storage_class for b in bvs} == {"longhorn"}

    add_lh_backup_target(kube_emulator, available=False, message="cannot reach s3")
    target = longhorn.get_backup_target(kube)
    assert not target.available and target.message == "cannot reach s3"
    assert target.url.startswith("s3://")


def test_trigger_backup(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_volume(kube_emulator, "vol", [("a", True)])

    def longhorn_manager() -> None:
        for snap in kube_emulator.list(R.LH_SNAPSHOTS, NS):
            if not (snap.get("status") or {}).get("readyToUse"):
                kube_emulator.patch(R.LH_SNAPSHOTS, snap["metadata"]["name"],
                                    {"status": {"readyToUse": True}}, NS)
        for backup in kube_emulator.list(R.LH_BACKUPS, NS):
            name = backup["metadata"]["name"]
            if (backup.get("status") or {}).get("state") != "Completed":
                kube_emulator.patch(R.LH_BACKUPS, name, {"status": {
                    "state": "Completed", "url": backup_url(name, "vol"),
                    "volumeName": "vol", "backupCreatedAt": "2026-01-05T00:00:00Z"}}, NS)

    with Reactor(longhorn_manager):
        backup = longhorn.trigger_backup(kube, "vol", timeout=5, poll=0.05)
    assert backup.state == "Completed" and backup.name.startswith("drbot-vol-")
    stored = kube_emulator.get(R.LH_BACKUPS, backup.name, NS)
    assert stored["spec"]["snapshotName"] == backup.name
    assert stored["metadata"]["labels"]["backup-volume"] == "vol"
    snap = kube_emulator.get(R.LH_SNAPSHOTS, backup.name, NS)
    assert snap["spec"] == {"volume": "vol", "createSnapshot": True,
                            "labels": {"created-by": "drbot"}}


def _finish_restores(kube_emulator: StandaloneKube, fail: bool = False) -> None:
    for vol in kube_emulator.list(R.LH_VOLUMES, NS):
        status = vol.get("status") or {}
        if vol["spec"].get("fromBackup") and status.get("state") != "detached":
            condition = {"type": "Restore", "status": "False",
                         "reason": "RestoreFailure" if fail else "",
                         "message": "backup is corrupted" if fail else ""}
            kube_emulator.patch(R.LH_VOLUMES, vol["metadata"]["name"], {"status": {
                "state": "detached", "restoreInitiated": True, "restoreRequired": fail,
                "conditions": [condition]}}, NS)


def test_restore_backup_builds_volume_pv_and_pvc(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_backup(kube_emulator, "backup-1", "pvc-old", size="2147483648")
    with Reactor(lambda: _finish_restores(kube_emulator)):
        restored = longhorn.restore_backup(kube, "backup-1", "data-restored", "apps",
                                           timeout=5, poll=0.05)
    assert restored.volume == "restore-apps-data-restored" and restored.size == "2147483648"
    volume = kube_emulator.get(R.LH_VOLUMES, restored.volume, NS)
    assert volume["spec"]["fromBackup"] == backup_url("backup-1", "pvc-old")
    pv = kube_emulator.get(R.PERSISTENTVOLUMES, restored.volume)
    assert pv["spec"]["csi"]["driver"] == "driver.longhorn.io"
    assert pv["spec"]["csi"]["volumeHandle"] == restored.volume
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["claimRef"] == {"namespace": "apps", "name": "data-restored"}
    pvc = kube_emulator.get(R.PERSISTENTVOLUMECLAIMS, "data-restored", "apps")
    assert pvc["spec"]["volumeName"] == restored.volume
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2147483648"
    # A retry finds its own objects and succeeds without creating anything new.
    again = longhorn.restore_backup(kube, "backup-1", "data-restored", "apps",
                                    timeout=5, poll=0.05)
    assert again == restored


def test_restore_refusals_and_failure(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_backup(kube_emulator, "running", "vol", state="InProgress")
    with pytest.raises(Refused, match="running is InProgress"):
        longhorn.restore_backup(kube, "running", "x", "apps", timeout=1, poll=0.05)
    add_lh_backup(kube_emulator, "good", "vol")
    kube_emulator.create(R.PERSISTENTVOLUMECLAIMS, {
        "metadata": {"name": "taken", "namespace": "apps"}, "spec": {"volumeName": "other"}})
    with pytest.raises(Conflict, match="PVC apps/taken already exists"):
        longhorn.restore_backup(kube, "good", "taken", "apps", timeout=1, poll=0.05)
    with Reactor(lambda: _finish_restores(kube_emulator, fail=True)), pytest.raises(
        AdapterError, match="failed to restore volume restore-apps-new: backup is corrupted"
    ):
        longhorn.restore_backup(kube, "good", "new", "apps", timeout=5, poll=0.05)
    assert kube_emulator.get(R.PERSISTENTVOLUMECLAIMS, "new", "apps") is None


def test_wait_replicas_healthy(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_volume(kube_emulator, "v1", [("a", True), ("b", False)], robustness="degraded")
    add_lh_volume(kube_emulator, "detached", [("a", False)], state="detached",
                  robustness="faulted")
    with pytest.raises(TimedOut, match=r"v1 \(degraded, 1/2 healthy replicas\)"):
        longhorn.wait_replicas_healthy(kube, timeout=0.2, poll=0.05)

    def rebuild() -> None:
        kube_emulator.patch(R.LH_REPLICAS, "v1-r-1", {"spec": {
            "failedAt": "", "healthyAt": "2026-01-02T00:00:00Z"}}, NS)
        kube_emulator.patch(R.LH_VOLUMES, "v1", {"status": {"robustness": "healthy"}}, NS)

    with Reactor(rebuild):
        done = longhorn.wait_replicas_healthy(kube, timeout=5, poll=0.05)
    assert [v.name for v in done] == ["v1"]


def test_the_restored_pvc_is_built_as_the_backup_recorded_it(kube_emulator: StandaloneKube,
                                                             kube: Kube) -> None:
    """Class, access mode and size as recorded, never defaults: a PVC's spec is immutable, and
    one that differs from Git breaks Flux. status.size (data stored) is not the volume size."""
    add_lh_backup(kube_emulator, "shared", "vol-rwx", size="5368709120", access_mode="rwx",
                  storage_class="longhorn-ssd")
    with Reactor(lambda: _finish_restores(kube_emulator)):
        restored = longhorn.restore_backup(kube, "shared", "media", "apps", timeout=5,
                                           poll=0.05)
    pvc = kube_emulator.get(R.PERSISTENTVOLUMECLAIMS, "media", "apps")
    assert pvc["spec"]["storageClassName"] == "longhorn-ssd"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5368709120" == restored.size
    volume = kube_emulator.get(R.LH_VOLUMES, restored.volume, NS)
    assert volume["spec"]["accessMode"] == "rwx" and volume["spec"]["size"] == "5368709120"


@pytest.mark.parametrize(("access_mode", "storage_class", "unknown"), [
    ("", "longhorn", "the access mode"),
    ("rwo", "", "the storage class"),
])
def test_a_restore_whose_pvc_spec_is_unknown_is_refused(
        kube_emulator: StandaloneKube, kube: Kube, access_mode: str, storage_class: str,
        unknown: str) -> None:
    add_lh_backup(kube_emulator, "b", "vol", access_mode=access_mode, storage_class=storage_class)
    with pytest.raises(Refused, match=unknown):
        longhorn.restore_backup(kube, "b", "data", "apps", timeout=1, poll=0.05)
    assert kube_emulator.list(R.LH_VOLUMES, NS) == []


def test_the_backup_target_is_read_from_spec_first(kube_emulator: StandaloneKube,
                                                   kube: Kube) -> None:
    """Longhorn v1.8 records a backup's target in spec.backupTargetName; the label and status
    are fallbacks (they may still say `default` on a backup of another target)."""
    add_lh_backup(kube_emulator, "b", "vol")
    kube_emulator.patch(R.LH_BACKUPS, "b", {"spec": {"backupTargetName": "offsite"},
                                            "status": {"backupTargetName": ""}}, NS)
    assert longhorn.get_backup(kube, "b").target == "offsite"


def test_a_target_sync_is_requested_through_its_spec(kube_emulator: StandaloneKube,
                                                     kube: Kube) -> None:
    from datetime import UTC, datetime

    add_lh_backup_target(kube_emulator)
    longhorn.request_target_sync(kube, "default", datetime(2026, 1, 3, 4, 5, 6, tzinfo=UTC))
    target = kube_emulator.get(R.LH_BACKUPTARGETS, "default", NS)
    assert target["spec"]["syncRequestedAt"] == "2026-01-03T04:05:06Z"


def test_which_recurring_backup_jobs_cover_each_volume(kube_emulator: StandaloneKube,
                                                        kube: Kube) -> None:
    from adapters.kubernetes.longhorn.recurring import backup_jobs_by_volume

    def job(name: str, task: str, groups: list[str]) -> None:
        kube_emulator.create(R.LH_RECURRINGJOBS, {
            "metadata": {"name": name, "namespace": NS},
            "spec": {"name": name, "task": task, "groups": groups, "cron": "0 2 * * *"}})

    job("daily", "backup", ["default"])
    job("weekly", "backup-force-create", [])
    job("snaps", "snapshot", ["fast"])
    for name in ("plain", "named", "grouped", "snapshots-only"):
        add_lh_volume(kube_emulator, name, [("a", True)])
    labels = {"named": {"recurring-job.longhorn.io/weekly": "enabled"},
              "grouped": {"recurring-job-group.longhorn.io/default": "enabled"},
              "snapshots-only": {"recurring-job-group.longhorn.io/fast": "enabled"}}
    for name, volume_labels in labels.items():
        kube_emulator.patch(R.LH_VOLUMES, name, {"metadata": {"labels": volume_labels}}, NS)
    assert backup_jobs_by_volume(kube) == {
        "plain": ["daily"],  # no recurring-job label at all: the default group
        "named": ["weekly"], "grouped": ["daily"], "snapshots-only": []}


def test_restore_limit_is_longhorns_setting_or_its_default(kube_emulator: StandaloneKube,
                                                           kube: Kube) -> None:
    assert longhorn.restore_limit(kube) == (
        5, "Longhorn's default (no concurrent-backup-restore-per-node-limit setting)")
    kube_emulator.create(R.LH_SETTINGS, {"metadata": {
        "name": "concurrent-backup-restore-per-node-limit", "namespace": NS}, "value": "3"})
    assert longhorn.restore_limit(kube) == (
        3, "Longhorn setting concurrent-backup-restore-per-node-limit")


def test_a_failed_restore_volume_is_discarded_only_while_no_pv_names_it(
        kube_emulator: StandaloneKube, kube: Kube) -> None:
    failed = {"state": "detached", "restoreInitiated": True, "conditions": [
        {"type": "Restore", "status": "False", "reason": "RestoreFailure", "message": "x"}]}
    for name in ("restore-apps-a", "restore-apps-b"):
        kube_emulator.create(R.LH_VOLUMES, {"metadata": {"name": name, "namespace": NS},
                                            "spec": {"fromBackup": backup_url("backup-1", "v")},
                                            "status": failed})
    kube_emulator.create(R.PERSISTENTVOLUMES, {"metadata": {"name": "restore-apps-b"},
                                               "spec": {"capacity": {"storage": "1Gi"}}})
    assert longhorn.discard_failed_restore(kube, "restore-apps-a")
    assert kube_emulator.get(R.LH_VOLUMES, "restore-apps-a", NS) is None
    assert not longhorn.discard_failed_restore(kube, "restore-apps-b")  # a PV names it
    assert not longhorn.discard_failed_restore(kube, "restore-apps-c")  # gone already
    assert kube_emulator.get(R.LH_VOLUMES, "restore-apps-b", NS) is not None


def _reported() -> tuple[list[str], Hooks]:
    seen: list[str] = []
    return seen, Hooks(report=lambda p: seen.append(p.message))


def _engine(kube_emulator: StandaloneKube, volume: str, key: str, entry: dict) -> None:
    """The volume's Engine with one replica's restoreStatus or rebuildStatus entry (created, or
    replaced on the existing one), as longhorn-manager's engine monitor writes it."""
    name = f"{volume}-e-0"
    status = {key: {"tcp://10.42.1.5:10105": entry}}
    if kube_emulator.get(R.LH_ENGINES, name, NS) is None:
        kube_emulator.create(R.LH_ENGINES, {"metadata": {"name": name, "namespace": NS},
                                            "spec": {"volumeName": volume}, "status": status})
    else:
        kube_emulator.patch(R.LH_ENGINES, name, {"status": status}, NS)


def test_a_restore_reports_longhorns_own_percentages_under_the_pvc_name(
        kube_emulator: StandaloneKube, kube: Kube) -> None:
    """Each percentage the Engine's restoreStatus shows is reported once, as it moves; the next
    step of this fake Longhorn waits until the last one was seen, so none is missed."""
    add_lh_backup(kube_emulator, "backup-1", "pvc-old")
    seen, hooks = _reported()
    volume = "restore-apps-data-restored"

    def longhorn_restores() -> None:
        if kube_emulator.get(R.LH_VOLUMES, volume, NS) is None:
            return
        if kube_emulator.get(R.LH_ENGINES, f"{volume}-e-0", NS) is None:
            kube_emulator.patch(R.LH_VOLUMES, volume, {"status": {
                "restoreInitiated": True, "restoreRequired": True, "state": "attached"}}, NS)
            _engine(kube_emulator, volume, "restoreStatus", {"isRestoring": True, "progress": 20})
        elif any(m.endswith(": 20%") for m in seen) and not any("60%" in m for m in seen):
            _engine(kube_emulator, volume, "restoreStatus", {"isRestoring": True, "progress": 60})
        elif any(m.endswith(": 60%") for m in seen):
            _finish_restores(kube_emulator)

    with Reactor(longhorn_restores):
        longhorn.restore_backup(kube, "backup-1", "data-restored", "apps", hooks, timeout=10,
                                poll=0.02)
    assert seen == ["Restoring backup backup-1 into apps/data-restored",
                    "Restoring backup backup-1 into apps/data-restored: 20%",
                    "Restoring backup backup-1 into apps/data-restored: 60%",
                    "Restored backup backup-1 into PVC apps/data-restored"]


def test_the_replica_wait_names_the_pvc_and_longhorns_rebuild_percentage(
        kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_volume(kube_emulator, "pvc-4582ab", [("a", True), ("b", False)], pvc="web-data",
                  pvc_namespace="apps", robustness="degraded")
    _engine(kube_emulator, "pvc-4582ab", "rebuildStatus",
            {"isRebuilding": True, "progress": 40, "state": "in_progress"})
    seen, hooks = _reported()

    def longhorn_rebuilds() -> None:
        if any(m.endswith("rebuilding 40%)") for m in seen) and not any("80%" in m for m in seen):
            _engine(kube_emulator, "pvc-4582ab", "rebuildStatus",
                    {"isRebuilding": True, "progress": 80, "state": "in_progress"})
        elif any(m.endswith("rebuilding 80%)") for m in seen):
            # done: Longhorn drops the entry, the replica is healthy, the volume too
            _engine(kube_emulator, "pvc-4582ab", "rebuildStatus",
                    {"isRebuilding": False, "progress": 100, "state": "complete"})
            kube_emulator.patch(R.LH_REPLICAS, "pvc-4582ab-r-1", {"spec": {
                "failedAt": "", "healthyAt": "2026-01-02T00:00:00Z"}}, NS)
            kube_emulator.patch(R.LH_VOLUMES, "pvc-4582ab", {"status": {"robustness": "healthy"}},
                                NS)

    with Reactor(longhorn_rebuilds):
        longhorn.wait_replicas_healthy(kube, ["pvc-4582ab"], timeout=10, poll=0.02, hooks=hooks)
    assert seen[:2] == [
        "Waiting for replicas: apps/web-data (degraded, 1/2 healthy replicas, rebuilding 40%)",
        "Waiting for replicas: apps/web-data (degraded, 1/2 healthy replicas, rebuilding 80%)"]
    assert seen[-1].startswith("All 1 volume(s) healthy after")
    assert len(seen) == len(set(seen)), "a line repeats although nothing moved"
    assert not [m for m in seen if "pvc-4582" in m]


def test_only_rebuilds_at_work_count_and_the_slowest_replica_is_the_figure(
        kube_emulator: StandaloneKube, kube: Kube) -> None:
    kube_emulator.create(R.LH_ENGINES, {
        "metadata": {"name": "v-e-0", "namespace": NS}, "spec": {"volumeName": "v"},
        "status": {"rebuildStatus": {
            "tcp://a:1": {"isRebuilding": True, "progress": 70},
            "tcp://b:1": {"isRebuilding": True, "progress": 35},
            "tcp://c:1": {"isRebuilding": False, "progress": 0, "state": "complete"}}}})
    kube_emulator.create(R.LH_ENGINES, {
        "metadata": {"name": "w-e-0", "namespace": NS}, "spec": {"volumeName": "w"},
        "status": {"rebuildStatus": {"tcp://a:1": {"isRebuilding": False, "progress": 100}},
                   "restoreStatus": {"tcp://a:1": {"isRestoring": True, "progress": 12}}}})
    assert engine_progress(kube, "rebuildStatus") == {"v": 35}
    assert engine_progress(kube, "restoreStatus") == {"w": 12}

"""Taking a Longhorn backup now, against Longhorn's backup handling as it really behaves (the
lab world's own controller, lab/controllers/longhorn_backup.py, run alone on the emulator): the
backup records its PVC as Longhorn's own API records it, a detached volume is attached first, a
failed backup leaves no snapshot behind."""

from __future__ import annotations

import json

import pytest

from adapters.errors import AdapterError, TimedOut
from adapters.kubernetes import longhorn
from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from lab.controllers.longhorn_backup import ATTACH_WAIT
from lab.fakes.kube import StandaloneKube, add_lh_volume, longhorn_backups

NS = R.LONGHORN_NAMESPACE


def snapshots(server: StandaloneKube) -> list[str]:
    return sorted(s["metadata"]["name"] for s in server.list(R.LH_SNAPSHOTS, NS))


def test_the_backup_records_its_pvc_as_longhorns_api_does(kube_emulator: StandaloneKube,
                                                          kube: Kube) -> None:
    add_lh_volume(kube_emulator, "vol", [("a", True)], pvc="data", pvc_namespace="apps")
    with longhorn_backups(kube_emulator):
        backup = longhorn.trigger_backup(kube, "vol", timeout=30, poll=0.05)
    assert (backup.pvc_namespace, backup.pvc) == ("apps", "data")
    assert longhorn.restorable(backup)
    assert backup.access_mode == "rwo"  # the mutator's label, recorded by the store
    labels = kube_emulator.get(R.LH_BACKUPS, backup.name, NS)["status"]["labels"]
    assert json.loads(labels["KubernetesStatus"])["pvcName"] == "data"


def test_a_backup_cr_without_the_label_records_no_pvc(kube_emulator: StandaloneKube,
                                                      kube: Kube) -> None:
    """The lab's Longhorn adds no KubernetesStatus to a Backup CR created directly (only the
    REST API does), so such a backup is not restorable into its PVC."""
    add_lh_volume(kube_emulator, "vol", [("a", True)], pvc="data", pvc_namespace="apps")
    kube_emulator.create(R.LH_SNAPSHOTS, {
        "metadata": {"name": "snap-x", "namespace": NS},
        "spec": {"volume": "vol", "createSnapshot": True}})
    kube_emulator.create(R.LH_BACKUPS, {
        "metadata": {"name": "bare", "namespace": NS}, "spec": {"snapshotName": "snap-x"}})
    with longhorn_backups(kube_emulator):
        done = longhorn.latest_backup(kube, "vol")
        while done is None:
            done = longhorn.latest_backup(kube, "vol")
    assert done.name == "bare" and done.pvc == "" and not longhorn.restorable(done)


def test_a_detached_volume_is_attached_first_not_failed(kube_emulator: StandaloneKube,
                                                        kube: Kube) -> None:
    add_lh_volume(kube_emulator, "vol", [("a", True)], pvc="data", pvc_namespace="apps",
                  state="detached")
    with longhorn_backups(kube_emulator, attach_passes=4) as manager:
        backup = longhorn.trigger_backup(kube, "vol", timeout=30, poll=0.05)
    assert backup.state == "Completed"
    assert manager.snapshot_errors == [ATTACH_WAIT.format(engine="vol-e-0")]


def test_a_failed_backup_fails_and_removes_drbots_snapshot(kube_emulator: StandaloneKube,
                                                           kube: Kube) -> None:
    add_lh_volume(kube_emulator, "vol", [("a", True)], pvc="data", pvc_namespace="apps")
    with longhorn_backups(kube_emulator, backup_error="cannot reach s3"), \
            pytest.raises(AdapterError, match="cannot reach s3"):
        longhorn.trigger_backup(kube, "vol", timeout=30, poll=0.05)
    assert snapshots(kube_emulator) == []


def test_a_snapshot_never_ready_times_out_and_is_removed(kube_emulator: StandaloneKube,
                                                         kube: Kube) -> None:
    add_lh_volume(kube_emulator, "vol", [("a", True)], state="detached")
    with longhorn_backups(kube_emulator, attach_passes=10**9), \
            pytest.raises(TimedOut, match="not ready"):
        longhorn.trigger_backup(kube, "vol", timeout=0.5, poll=0.05)
    assert snapshots(kube_emulator) == []


def test_a_real_snapshot_error_fails_at_once(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_volume(kube_emulator, "vol", [("a", True)])

    def lost() -> None:
        for snap in kube_emulator.list(R.LH_SNAPSHOTS, NS):
            kube_emulator.patch(R.LH_SNAPSHOTS, snap["metadata"]["name"], {
                "status": {"error": "lost track of snapshot"}}, NS)

    from lab.fakes.kube import Reactor
    with Reactor(lost), pytest.raises(AdapterError, match="lost track"):
        longhorn.trigger_backup(kube, "vol", timeout=30, poll=0.05)
    assert snapshots(kube_emulator) == []


def test_the_volumes_own_backup_target_is_used(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_volume(kube_emulator, "vol", [("a", True)], pvc="data", pvc_namespace="apps")
    kube_emulator.patch(R.LH_VOLUMES, "vol", {"spec": {"backupTargetName": "offsite"}}, NS)
    with longhorn_backups(kube_emulator):
        backup = longhorn.trigger_backup(kube, "vol", timeout=30, poll=0.05)
    assert backup.target == "offsite"
    assert kube_emulator.get(R.LH_BACKUPS, backup.name, NS)["metadata"]["labels"][
        "backup-target"] == "offsite"


def test_only_drbots_newest_snapshot_is_kept(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_lh_volume(kube_emulator, "vol", [("a", True)], pvc="data", pvc_namespace="apps")
    for name, labels in (("drbot-vol-20250101000000", {"created-by": "drbot"}),
                         ("recurring-daily", {"RecurringJob": "daily"})):
        kube_emulator.create(R.LH_SNAPSHOTS, {
            "metadata": {"name": name, "namespace": NS},
            "spec": {"volume": "vol", "createSnapshot": False, "labels": labels}})
    with longhorn_backups(kube_emulator):
        backup = longhorn.trigger_backup(kube, "vol", timeout=30, poll=0.05)
    assert snapshots(kube_emulator) == sorted([backup.name, "recurring-daily"])

"""What phase 3 of rebuild-cluster must restore (handlers.restore_set, the restore plan and the
coverage check), against the Kubernetes emulator seeded as Longhorn would be."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from handlers import rebuild_cluster, restore_set
from lab.fakes.kube import (
    StandaloneKube,
    add_lh_backup,
    add_lh_backup_target,
    add_lh_backup_volume,
    add_lh_volume,
)

NS = R.LONGHORN_NAMESPACE
SINCE = datetime(2026, 1, 3, tzinfo=UTC)


def test_a_backup_that_records_no_pvc_is_not_coverage(kube_emulator: StandaloneKube,
                                                      kube: Kube) -> None:
    """The preflight and the plan use one test: a volume backed up only without the
    KubernetesStatus label (a Backup CR made directly) is reported as unprotected."""
    add_lh_volume(kube_emulator, "vol-a", [("n1", True)], pvc="a", pvc_namespace="apps")
    add_lh_volume(kube_emulator, "vol-b", [("n1", True)], pvc="b", pvc_namespace="apps")
    add_lh_backup(kube_emulator, "backup-a", "vol-a", pvc="a", pvc_namespace="apps")
    add_lh_backup(kube_emulator, "backup-b", "vol-b")  # records no PVC
    assert [b.name for b in rebuild_cluster.restore_plan(kube)] == ["backup-a"]
    assert rebuild_cluster.unrestorable(kube) == ["apps/b"]


def test_every_stored_volume_is_expected_and_each_gap_named(kube_emulator: StandaloneKube,
                                                            kube: Kube) -> None:
    add_lh_backup(kube_emulator, "old-a", "vol-a", pvc="a", pvc_namespace="apps",
                  created="2026-01-01T00:00:00Z")
    add_lh_backup(kube_emulator, "new-a", "vol-a", pvc="a", pvc_namespace="apps",
                  created="2026-01-02T00:00:00Z")
    add_lh_backup(kube_emulator, "bare-b", "vol-b")
    found = restore_set.expected_set(kube, ["vol-a", "vol-b", "vol-c"])
    assert [b.name for b in found.planned] == ["new-a"]
    assert [m.split(":")[0] for m in found.missing] == ["vol-b", "vol-c"]
    assert "record no PVC" in found.missing[0]
    assert "no completed Backup" in found.missing[1]


def test_synced_only_after_the_target_and_each_stored_volume(kube_emulator: StandaloneKube,
                                                              kube: Kube) -> None:
    add_lh_backup_target(kube_emulator)  # last synced 2026-01-02, before the step began
    add_lh_backup_volume(kube_emulator, "vol-a", last_backup="b", last_backup_at="2026-01-01")
    assert restore_set.request_sync(kube, SINCE) == ["default"]
    assert kube_emulator.get(R.LH_BACKUPTARGETS, "default", NS)["spec"][
        "syncRequestedAt"] == "2026-01-03T00:00:00Z"
    waiting = restore_set.not_synced(kube, SINCE, ["vol-a", "vol-b"])
    assert waiting == ["backup target default (not synced yet)", "backup volume vol-a",
                       "backup volume vol-b"]
    kube_emulator.patch(R.LH_BACKUPTARGETS, "default",
                        {"status": {"lastSyncedAt": "2026-01-03T00:00:01Z"}}, NS)
    add_lh_backup_volume(kube_emulator, "vol-a", last_backup="b",
                         last_backup_at="2026-01-03T00:00:01Z")
    assert restore_set.not_synced(kube, SINCE, ["vol-a"]) == []


def test_a_sync_is_asked_for_the_next_whole_second() -> None:
    """Stamps are whole seconds and a target syncs only when asked for a later time than its
    last pass: a pass begun earlier in this second must not count as the one asked for."""
    assert restore_set.sync_mark(datetime(2026, 1, 3, 4, 5, 6, 300_000, tzinfo=UTC)) == datetime(
        2026, 1, 3, 4, 5, 7, tzinfo=UTC)
    assert restore_set.sync_mark(datetime(2026, 1, 3, 4, 5, 6, tzinfo=UTC)) == datetime(
        2026, 1, 3, 4, 5, 7, tzinfo=UTC)
    east = timezone(timedelta(hours=2))
    assert restore_set.sync_mark(datetime(2026, 1, 3, 6, 5, 6, 999_999, tzinfo=east)) == datetime(
        2026, 1, 3, 4, 5, 7, tzinfo=UTC)


def test_no_backup_target_means_longhorn_is_not_there_yet(kube: Kube) -> None:
    assert restore_set.not_synced(kube, SINCE, []) == [
        "no Longhorn BackupTarget exists yet (is Longhorn installed?)"]


def test_an_app_that_applied_or_made_its_pvc_is_found(kube_emulator: StandaloneKube,
                                                      kube: Kube) -> None:
    """Flux applies a new Kustomization at once unless dependsOn holds it: one that applied a
    revision, or a PVC to restore that exists and is not drbot's, means the app ran."""
    from lab.fakes.kube import add_kustomization

    add_kustomization(kube_emulator, "apps", suspended=True)
    add_kustomization(kube_emulator, "held", suspended=True)
    kube_emulator.patch(R.KUSTOMIZATIONS, "apps", {"status": {
        "lastAppliedRevision": "main@sha1:0123abcd"}}, "flux-system")
    kube_emulator.patch(R.KUSTOMIZATIONS, "held", {"status": {"lastAppliedRevision": ""}},
                        "flux-system")
    add_lh_backup(kube_emulator, "backup-a", "vol-a", pvc="a", pvc_namespace="apps")
    add_lh_backup(kube_emulator, "backup-b", "vol-b", pvc="b", pvc_namespace="apps")
    for name, volume in (("a", "pvc-empty"), ("b", "restore-apps-b")):
        kube_emulator.create(R.PERSISTENTVOLUMECLAIMS, {
            "metadata": {"name": name, "namespace": "apps"}, "spec": {"volumeName": volume}})
    planned = restore_set.expected_set(kube, ["vol-a", "vol-b"]).planned
    assert restore_set.started_apps(kube, ["flux-system/apps", "flux-system/held"], planned) == [
        "Kustomization flux-system/apps applied main@sha1:0123abcd",
        "PVC apps/a exists (bound to pvc-empty)"]

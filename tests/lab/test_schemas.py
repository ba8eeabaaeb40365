"""The foreign kinds the lab seeds and drbot writes hold to the real schemas (lab/schemas.py,
written from the upstream CRDs; Flux's through the generated cloudcoil models)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.kubernetes import longhorn
from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from handlers import restore_set
from lab import schemas, world
from lab.fakes.kube import (
    Reactor,
    StandaloneKube,
    add_lh_backup,
    add_lh_backup_target,
    add_lh_volume,
    longhorn_backups,
)
from lab.seed import seed_objects


def seeded() -> list[dict[str, Any]]:
    members = {s.name: world.etcd_member(s) for s in world.NODES if s.server}
    return seed_objects(datetime.now(UTC), members, 1024, "git-key")


def test_every_seeded_foreign_object_holds_to_its_schema() -> None:
    objs = [o for o in seeded() if schemas.checked(o)]
    kinds = {o["kind"] for o in objs}
    assert {"Volume", "Backup", "BackupVolume", "BackupTarget", "Node", "Replica", "Engine",
            "Cluster",
            "ScheduledBackup", "ETCDSnapshotFile", "Kustomization", "HelmRelease",
            "GitRepository"} <= kinds
    assert [p for o in objs for p in schemas.problems(o)] == []


@pytest.mark.parametrize(("kind", "change", "wrong"), [
    ("Volume", {"spec": {"accessMode": "ReadWriteOnce"}}, "accessMode"),
    ("Volume", {"spec": {"size": "10Gi"}}, "size"),
    ("Backup", {"status": {"state": "Done"}}, "state"),
    ("BackupTarget", {"status": {"lastSyncedAt": "yesterday"}}, "lastSyncedAt"),
    ("Kustomization", {"spec": {"sourceRef": {"kind": "Git", "name": "x"}}}, "sourceRef"),
    ("Engine", {"status": {"rebuildStatus": {"tcp://a:1": {"progress": "40%"}}}}, "progress"),
])
def test_a_wrong_field_is_found(kind: str, change: dict[str, Any], wrong: str) -> None:
    obj = copy.deepcopy(next(o for o in seeded() if o.get("kind") == kind))
    for part, fields in change.items():
        obj[part].update(fields)
    found = schemas.problems(obj)
    assert found and wrong in found[0]


def test_what_drbot_writes_holds_to_the_schemas(kube_emulator: StandaloneKube, kube: Kube) -> None:
    """A backup taken, a sync requested, a restore's Volume: each object as the API holds it."""
    add_lh_volume(kube_emulator, "vol", [("a", True)], pvc="data", pvc_namespace="apps")
    add_lh_backup_target(kube_emulator)
    with longhorn_backups(kube_emulator):
        taken = longhorn.trigger_backup(kube, "vol", timeout=30, poll=0.05)
    restore_set.request_sync(kube, datetime(2026, 1, 3, tzinfo=UTC))
    add_lh_backup(kube_emulator, "b", "vol-2", pvc="x", pvc_namespace="apps")

    def restored() -> None:
        for vol in kube_emulator.list(R.LH_VOLUMES, R.LONGHORN_NAMESPACE):
            if vol["spec"].get("fromBackup") and (vol.get("status") or {}).get(
                    "state") != "detached":
                kube_emulator.patch(R.LH_VOLUMES, vol["metadata"]["name"], {"status": {
                    "state": "detached", "restoreInitiated": True, "restoreRequired": False}},
                    R.LONGHORN_NAMESPACE)

    with Reactor(restored):
        longhorn.restore_backup(kube, "b", "x-restored", "apps", timeout=10, poll=0.05)
    written = [
        kube_emulator.get(R.LH_BACKUPS, taken.name, R.LONGHORN_NAMESPACE),
        kube_emulator.get(R.LH_SNAPSHOTS, taken.name, R.LONGHORN_NAMESPACE),
        kube_emulator.get(R.LH_BACKUPTARGETS, "default", R.LONGHORN_NAMESPACE),
        kube_emulator.get(R.LH_VOLUMES, "restore-apps-x-restored", R.LONGHORN_NAMESPACE),
    ]
    for obj in written:
        assert obj is not None
        api = R.LH_BACKUPS.group + "/" + R.LH_BACKUPS.version
        obj.setdefault("apiVersion", api)
    kinds = ["Backup", "Snapshot", "BackupTarget", "Volume"]
    for obj, kind in zip(written, kinds, strict=True):
        obj["kind"] = obj.get("kind") or kind
        assert schemas.problems(obj) == [], obj

"""PVCs and PVs: read, create and delete a PVC; keep a PV (Retain) and bind it to a PVC name."""

from __future__ import annotations

import pytest

from adapters.errors import NotFound
from adapters.kubernetes import resources as R
from adapters.kubernetes import storage
from adapters.kubernetes.client import Kube
from lab.fakes.kube import StandaloneKube


def add_pv(server: StandaloneKube, name: str, claim: tuple[str, str]) -> None:
    server.create(R.PERSISTENTVOLUMES, {"metadata": {"name": name}, "spec": {
        "persistentVolumeReclaimPolicy": "Delete", "capacity": {"storage": "1Gi"},
        "claimRef": {"namespace": claim[0], "name": claim[1], "uid": "old-uid",
                     "resourceVersion": "7"}}})


def test_get_pvc_reads_class_modes_and_bound_volume(kube_emulator: StandaloneKube, kube: Kube) -> None:
    kube_emulator.create(R.PERSISTENTVOLUMECLAIMS, {
        "metadata": {"name": "data", "namespace": "apps"},
        "spec": {"storageClassName": "longhorn", "accessModes": ["ReadWriteMany"],
                 "volumeName": "pvc-123"}, "status": {"phase": "Bound"}})
    kube_emulator.create(R.PERSISTENTVOLUMECLAIMS, {
        "metadata": {"name": "bare", "namespace": "apps"}, "spec": {}})
    assert storage.get_pvc(kube, "apps", "data") == storage.Pvc(
        "data", "apps", "longhorn", ["ReadWriteMany"], "pvc-123", "Bound")
    assert storage.get_pvc(kube, "apps", "bare") == storage.Pvc("bare", "apps", "", [], "", "")
    with pytest.raises(NotFound):
        storage.get_pvc(kube, "apps", "missing")


def test_create_pvc_binds_the_named_volume(kube_emulator: StandaloneKube, kube: Kube) -> None:
    storage.create_pvc(kube, "apps", "data", storage_class="longhorn",
                       access_modes=["ReadWriteOnce"], size="2Gi", volume="pv-restored")
    spec = kube_emulator.get(R.PERSISTENTVOLUMECLAIMS, "data", "apps")["spec"]
    assert spec == {"accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn",
                    "resources": {"requests": {"storage": "2Gi"}}, "volumeName": "pv-restored"}


def test_delete_pvc_tells_whether_it_was_there(kube_emulator: StandaloneKube, kube: Kube) -> None:
    kube_emulator.create(R.PERSISTENTVOLUMECLAIMS, {
        "metadata": {"name": "data", "namespace": "apps"}, "spec": {}})
    assert storage.delete_pvc(kube, "apps", "data") is True
    assert kube_emulator.get(R.PERSISTENTVOLUMECLAIMS, "data", "apps") is None
    assert storage.delete_pvc(kube, "apps", "data") is False


def test_retain_then_bind_a_pv_to_a_new_claim(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_pv(kube_emulator, "pv-old", ("apps", "data"))
    add_pv(kube_emulator, "pv-new", ("apps", "data-restored"))
    storage.retain_pv(kube, "pv-old")
    storage.bind_pv(kube, "pv-new", "apps", "data")
    old = kube_emulator.get(R.PERSISTENTVOLUMES, "pv-old")["spec"]
    assert old["persistentVolumeReclaimPolicy"] == "Retain"
    assert old["claimRef"]["uid"] == "old-uid"  # untouched: only the policy changes
    new = kube_emulator.get(R.PERSISTENTVOLUMES, "pv-new")["spec"]
    assert new["claimRef"] == {"namespace": "apps", "name": "data"}  # the old uid is dropped
    assert new["persistentVolumeReclaimPolicy"] == "Delete"

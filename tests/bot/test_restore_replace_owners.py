"""/dr restore --replace holds every Flux object that would undo the swap: the workload's
Kustomization and HelmRelease (helm-controller's labels), the PVC's own Kustomization; and finds
the StatefulSet whose claim template made the PVC (<template>-<statefulset>-<ordinal>)."""

from __future__ import annotations

from pathlib import Path

from adapters.kubernetes import resources as R
from adapters.kubernetes import workloads
from adapters.kubernetes.client import Kube
from bot import registry
from bot.config.inventory import Inventory, KubernetesTarget
from bot.config.settings import Settings
from bot.runbook import PlanContext
from bot.worker.services import Services
from lab.fakes.kube import (
    StandaloneKube,
    add_lh_backup,
    add_lh_node,
    add_lh_volume,
    set_lh_disk,
    write_kubeconfig,
)

HELM = {"helm.toolkit.fluxcd.io/name": "db", "helm.toolkit.fluxcd.io/namespace": "apps"}
KS_APPS = {"kustomize.toolkit.fluxcd.io/name": "apps",
           "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}
KS_DATA = {"kustomize.toolkit.fluxcd.io/name": "storage",
           "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}


def statefulset(server: StandaloneKube) -> None:
    server.create(R.STATEFULSETS, {
        "metadata": {"name": "db", "namespace": "apps", "labels": {**HELM, **KS_APPS}},
        "spec": {"replicas": 2, "serviceName": "db",
                 "template": {"spec": {"containers": [{"name": "pg", "image": "postgres"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}}]},
        "status": {"readyReplicas": 2}})


def test_a_claim_template_pvc_is_mounted_by_its_statefulset(kube_emulator: StandaloneKube,
                                                            kube: Kube) -> None:
    statefulset(kube_emulator)
    assert [w.name for w in workloads.mounting(kube, "apps", "data-db-1")] == ["db"]
    assert workloads.mounting(kube, "apps", "data-db") == []
    assert workloads.mounting(kube, "apps", "data-dbx-0") == []


def test_replace_suspends_the_helmrelease_and_the_pvcs_kustomization_too(
        kube_emulator: StandaloneKube, tmp_path: Path) -> None:
    statefulset(kube_emulator)
    add_lh_volume(kube_emulator, "pvc-d0", [("a", True)], pvc="data-db-0", pvc_namespace="apps")
    add_lh_node(kube_emulator, "a")  # with room for the restored copy (handlers.restore.room)
    set_lh_disk(kube_emulator, "a", maximum=100 << 30, available=60 << 30)
    add_lh_backup(kube_emulator, "backup-d0", "pvc-d0", pvc="data-db-0", pvc_namespace="apps")
    kube_emulator.create(R.PERSISTENTVOLUMECLAIMS, {
        "metadata": {"name": "data-db-0", "namespace": "apps", "labels": KS_DATA},
        "spec": {"volumeName": "pvc-d0", "storageClassName": "longhorn",
                 "accessModes": ["ReadWriteOnce"]}})
    config = write_kubeconfig(tmp_path / "kubeconfig", kube_emulator.url)
    inventory = Inventory(kubernetes=KubernetesTarget(kubeconfig=str(config)))
    book = registry.spec("restore").fn(PlanContext(
        {"pvc": "apps/data-db-0", "replace": True}, inventory,
        Services(Settings(kubeconfig=None), inventory)))
    names = [s.name for s in book.steps]
    assert names == ["restore", "suspend Kustomization", "suspend HelmRelease apps/db",
                     "suspend Kustomization flux-system/storage", "scale down", "swap PVC",
                     "scale up", "resume Kustomization flux-system/storage",
                     "resume HelmRelease apps/db", "resume Kustomization"]
    assert "scale StatefulSet apps/db" in book.targets

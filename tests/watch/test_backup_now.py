"""/dr backup-now's runbook against the Kubernetes emulator (the lab's has no Snapshot resource):
the name selects an existing object, and the backup object is created and waited for."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.kubernetes import resources as R
from adapters.progress import Hooks
from bot import registry
from bot.config.inventory import Inventory, KubernetesTarget
from bot.config.settings import Settings
from bot.errors import CommandError
from bot.runbook import PlanContext, Runbook, StepContext
from bot.worker.services import Services
from lab.fakes.kube import (
    Reactor,
    StandaloneKube,
    add_cnpg_cluster,
    add_lh_volume,
    write_kubeconfig,
)

NS = R.LONGHORN_NAMESPACE


def plan(server: StandaloneKube, tmp_path: Path, kind: str, name: str) -> Runbook:
    config = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    inventory = Inventory(kubernetes=KubernetesTarget(kubeconfig=str(config)))
    services = Services(Settings(kubeconfig=None), inventory)
    spec = registry.spec("backup-now")
    return spec.fn(PlanContext({"kind": kind, "name": name}, inventory, services))


def run(book: Runbook, services: Services) -> dict:
    step = book.steps[0]
    return step.run(StepContext("job", step.name, {}, Hooks(), services, services.inventory)) or {}


def test_longhorn_backup_is_created_for_the_named_pvc(kube_emulator: StandaloneKube,
                                                      tmp_path: Path) -> None:
    add_lh_volume(kube_emulator, "pvc-1", [("a", True)], pvc="archive", pvc_namespace="apps")

    def longhorn_manager() -> None:
        for snap in kube_emulator.list(R.LH_SNAPSHOTS, NS):
            if not (snap.get("status") or {}).get("readyToUse"):
                kube_emulator.patch(R.LH_SNAPSHOTS, snap["metadata"]["name"],
                                    {"status": {"readyToUse": True}}, NS)
        for backup in kube_emulator.list(R.LH_BACKUPS, NS):
            if (backup.get("status") or {}).get("state") != "Completed":
                kube_emulator.patch(R.LH_BACKUPS, backup["metadata"]["name"],
                                    {"status": {"state": "Completed"}}, NS)

    book = plan(kube_emulator, tmp_path, "longhorn", "apps/archive")
    assert book.targets == ["Longhorn volume apps/archive"]
    services = Services(Settings(kubeconfig=None), Inventory(kubernetes=KubernetesTarget(
        kubeconfig=str(tmp_path / "kubeconfig"))))
    with Reactor(longhorn_manager):
        result = run(book, services)
    backup = kube_emulator.get(R.LH_BACKUPS, result["backup"], NS)
    assert backup["metadata"]["labels"]["backup-volume"] == "pvc-1"
    assert book.summary and "completed" in book.summary({"back up": result})


def test_cnpg_backup_object_is_created(kube_emulator: StandaloneKube, tmp_path: Path) -> None:
    add_cnpg_cluster(kube_emulator, "pg-auth", "databases")

    def operator() -> None:
        for backup in kube_emulator.list(R.CNPG_BACKUPS, "databases"):
            if (backup.get("status") or {}).get("phase") != "completed":
                kube_emulator.patch(R.CNPG_BACKUPS, backup["metadata"]["name"], {"status": {
                    "phase": "completed", "backupId": "20260101T000000"}}, "databases")

    book = plan(kube_emulator, tmp_path, "cnpg", "pg-auth")
    services = Services(Settings(kubeconfig=None), Inventory(kubernetes=KubernetesTarget(
        kubeconfig=str(tmp_path / "kubeconfig"))))
    with Reactor(operator):
        result = run(book, services)
    created = kube_emulator.get(R.CNPG_BACKUPS, result["backup"], "databases")
    assert created["spec"]["cluster"] == {"name": "pg-auth"}


def test_an_unknown_name_is_refused_with_the_known_ones(kube_emulator: StandaloneKube,
                                                        tmp_path: Path) -> None:
    add_lh_volume(kube_emulator, "pvc-1", [("a", True)], pvc="archive", pvc_namespace="apps")
    with pytest.raises(CommandError, match="known: apps/archive"):
        plan(kube_emulator, tmp_path, "longhorn", "archiv")

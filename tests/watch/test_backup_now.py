"""/dr backup-now's runbook against the Kubernetes emulator with the lab's own Longhorn and CNPG
backup controllers run beside it (lab/controllers): the name selects an existing object, and the
backup object is created and waited for until it completes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from adapters.kubernetes import resources as R
from adapters.progress import Hooks, Progress
from bot import registry
from bot.config.inventory import Inventory, KubernetesTarget
from bot.config.settings import Settings
from bot.errors import CommandError
from bot.runbook import PlanContext, Runbook, StepContext
from bot.worker.services import Services
from lab.controllers.base import Timings
from lab.controllers.cnpg import CnpgController
from lab.fakes.kube import (
    Controller,
    StandaloneKube,
    add_cnpg_cluster,
    add_lh_volume,
    longhorn_backups,
    write_kubeconfig,
)
from lab.fakes.s3 import S3Server
from tests.support import wait_until

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
    book = plan(kube_emulator, tmp_path, "longhorn", "apps/archive")
    assert book.targets == ["Longhorn volume apps/archive"]
    services = Services(Settings(kubeconfig=None), Inventory(kubernetes=KubernetesTarget(
        kubeconfig=str(tmp_path / "kubeconfig"))))
    with longhorn_backups(kube_emulator):
        result = run(book, services)
    backup = kube_emulator.get(R.LH_BACKUPS, result["backup"], NS)
    assert backup["metadata"]["labels"]["backup-volume"] == "pvc-1"
    assert backup["status"]["state"] == "Completed"
    assert book.summary and "completed" in book.summary({"back up": result})


def cnpg_backup_now(kube_emulator: StandaloneKube, tmp_path: Path, s3_server: S3Server,
                    archiving: tuple[bool, str] = (True, "")
                    ) -> tuple[Controller, Runbook, Services]:
    """pg-auth backed up to a bucket of the S3 server, the lab's CNPG operator (not yet
    started), and /dr backup-now cnpg pg-auth planned."""
    add_cnpg_cluster(kube_emulator, "pg-auth", "databases", archiving=archiving)
    kube_emulator.patch(R.CNPG_CLUSTERS, "pg-auth", {"spec": {"backup": {"barmanObjectStore": {
        "destinationPath": f"s3://{s3_server.new_bucket()}/"}}}}, "databases")
    operator = Controller(kube_emulator, CnpgController, "cnpg_backups",
                          t=Timings(cnpg_backup=0.1), cnpg_store=s3_server.store)
    book = plan(kube_emulator, tmp_path, "cnpg", "pg-auth")
    services = Services(Settings(kubeconfig=None), Inventory(kubernetes=KubernetesTarget(
        kubeconfig=str(tmp_path / "kubeconfig"))))
    return operator, book, services


def test_cnpg_backup_object_is_created(kube_emulator: StandaloneKube, tmp_path: Path,
                                       s3_server: S3Server) -> None:
    operator, book, services = cnpg_backup_now(kube_emulator, tmp_path, s3_server)
    with operator:
        result = run(book, services)
    created = kube_emulator.get(R.CNPG_BACKUPS, result["backup"], "databases")
    assert created["spec"]["cluster"] == {"name": "pg-auth"}
    assert result["backup_id"] == created["status"]["backupId"] != ""


def test_a_backup_cnpg_holds_for_failing_wal_archiving_is_told_then_awaited(
        kube_emulator: StandaloneKube, tmp_path: Path, s3_server: S3Server) -> None:
    """CNPG keeps such a Backup in walArchivingFailing, not failed: the thread is told why it
    waits (once), and the backup completes when archiving works again."""
    operator, book, services = cnpg_backup_now(kube_emulator, tmp_path, s3_server,
                                               archiving=(False, "no space"))
    told: list[Progress] = []
    step = book.steps[0]
    ctx = StepContext("job", step.name, {}, Hooks(report=told.append), services,
                      services.inventory)
    with operator, ThreadPoolExecutor(1) as pool:
        running = pool.submit(step.run, ctx)
        wait_until(lambda: any(p.status == "walArchivingFailing" for p in told), 30,
                   "the thread to be told why the backup waits")
        cluster = kube_emulator.get(R.CNPG_CLUSTERS, "pg-auth", "databases") or {}
        conditions = [{**c, "status": "True"} if c["type"] == "ContinuousArchiving" else c
                      for c in cluster["status"]["conditions"]]
        kube_emulator.patch(R.CNPG_CLUSTERS, "pg-auth", {"status": {"conditions": conditions}},
                            "databases")
        result = running.result(60)
    held = [p.message for p in told if p.status == "walArchivingFailing"]
    assert len(held) == 1 and "WAL archiving fails" in held[0]
    assert "describe cluster pg-auth" in held[0]
    assert kube_emulator.get(R.CNPG_BACKUPS, result["backup"], "databases")["status"][
        "phase"] == "completed"


def test_an_unknown_name_is_refused_with_the_known_ones(kube_emulator: StandaloneKube,
                                                        tmp_path: Path) -> None:
    add_lh_volume(kube_emulator, "pvc-1", [("a", True)], pvc="archive", pvc_namespace="apps")
    with pytest.raises(CommandError, match="known: apps/archive"):
        plan(kube_emulator, tmp_path, "longhorn", "archiv")

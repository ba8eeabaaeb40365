"""Workloads seen from a PVC: the pods that mount it, the Deployments and StatefulSets whose pod
template mounts it, and scaling one to 0 and back with its replica count kept on it."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.errors import NotFound
from adapters.kubernetes import resources as R
from adapters.kubernetes import workloads
from adapters.kubernetes.client import Kube
from lab.fakes.kube import StandaloneKube, add_pod

KEPT = "drbot.io/replicas-before-restore"


def add_workload(server: StandaloneKube, res: R.Resource, name: str, claim: str | None,
                 replicas: int | None = 1, labels: dict[str, str] | None = None) -> dict[str, Any]:
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}] if claim else []
    spec: dict[str, Any] = {"template": {"spec": {"volumes": [
        {"name": "tmp", "emptyDir": {}}, *volumes]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return server.create(res, {"metadata": {"name": name, "namespace": "apps",
                                            "labels": labels or {}},
                               "spec": spec, "status": {"readyReplicas": replicas or 0}})


def test_pvc_users_are_the_running_or_pending_pods_that_mount_it(
        kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_pod(kube_emulator, "web-b", "apps", "n1", pvc="data")
    add_pod(kube_emulator, "web-a", "apps", "n1", pvc="data", phase="Pending")
    add_pod(kube_emulator, "job-done", "apps", "n1", pvc="data", phase="Succeeded")
    add_pod(kube_emulator, "other", "apps", "n1", pvc="other")
    add_pod(kube_emulator, "elsewhere", "tools", "n1", pvc="data")
    assert workloads.pvc_users(kube, "apps", "data") == ["web-a", "web-b"]
    assert workloads.pvc_users(kube, "apps", "unused") == []


def test_mounting_lists_deployments_then_statefulsets(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_workload(kube_emulator, R.STATEFULSETS, "db", "data", replicas=None)
    add_workload(kube_emulator, R.DEPLOYMENTS, "web", "data", replicas=2,
                 labels={"kustomize.toolkit.fluxcd.io/name": "apps"})
    add_workload(kube_emulator, R.DEPLOYMENTS, "cache", None)
    found = workloads.mounting(kube, "apps", "data")
    assert [(w.kind, w.name, w.replicas) for w in found] == [("Deployment", "web", 2),
                                                              ("StatefulSet", "db", 1)]
    assert found[0].labels == {"kustomize.toolkit.fluxcd.io/name": "apps"}
    assert found[0].claims == ["data"] and found[0].ref == "Deployment apps/web"
    assert workloads.mounting(kube, "apps", "nothing") == []


@pytest.mark.parametrize("res", [R.DEPLOYMENTS, R.STATEFULSETS], ids=lambda r: r.kind)
def test_scale_down_keeps_the_count_and_a_retry_keeps_the_first(
        kube_emulator: StandaloneKube, kube: Kube, res: R.Resource) -> None:
    add_workload(kube_emulator, res, "db", "data", replicas=3)
    assert workloads.scale_down(kube, res.kind, "apps", "db", KEPT) == 3
    obj = kube_emulator.get(res, "db", "apps")
    assert obj["spec"]["replicas"] == 0 and obj["metadata"]["annotations"] == {KEPT: "3"}
    assert workloads.scale_down(kube, res.kind, "apps", "db", KEPT) == 3  # not 0

    workloads.scale_up(kube, res.kind, "apps", "db", 3, KEPT)
    back = workloads.get_workload(kube, res.kind, "apps", "db")
    assert back.replicas == 3 and KEPT not in back.annotations
    assert back.ready_replicas == 3


def test_unknown_kind_and_missing_workload(kube: Kube) -> None:
    with pytest.raises(ValueError, match="Deployment or StatefulSet"):
        workloads.get_workload(kube, "DaemonSet", "apps", "x")
    with pytest.raises(NotFound):
        workloads.get_workload(kube, "Deployment", "apps", "missing")

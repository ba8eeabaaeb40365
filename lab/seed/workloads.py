"""The workloads of the seed: the pods on each node (longhorn-manager, web, gitea, the databases,
coredns, grafana, podinfo (its Deployment comes with its HelmRelease), drbot's worker) and the
PodDisruptionBudgets of web and coredns.

`pod_object` is also how the lab's workload controller starts a pod.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lab.world import CNPG_NS, LONGHORN_NS, NODES, VOLUMES, stable_hex, stable_uuid


def pod_object(
    name: str,
    ns: str,
    node: str,
    labels: dict[str, str],
    owner: tuple[str, str],
    volumes: list[dict] | None = None,
) -> dict[str, Any]:
    """A running pod on `node`, owned by `owner` (kind, name)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": owner[0],
                    "name": owner[1],
                    "controller": True,
                    "uid": stable_uuid(ns, owner[1]),
                }
            ],
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "image": "busybox"}],
            "volumes": volumes or [],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.42.0.{int(stable_hex('ip', name, n=4), 16) % 250 + 2}",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def workload_objects(now: datetime) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for spec in NODES:
        suffix = stable_hex("ds", spec.name, n=5)
        objs.append(
            pod_object(
                f"longhorn-manager-{suffix}",
                LONGHORN_NS,
                spec.name,
                {"app": "longhorn-manager"},
                ("DaemonSet", "longhorn-manager"),
            )
        )
    objs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "longhorn-manager", "namespace": LONGHORN_NS},
            "spec": {"selector": {"matchLabels": {"app": "longhorn-manager"}}},
            "status": {"desiredNumberScheduled": len(NODES), "numberReady": len(NODES)},
        }
    )
    web = next(v for v in VOLUMES if v.pvc == "web-data")
    objs.append(
        pod_object(
            "web-7d9f8b6c5-x2x7q",
            "apps",
            "k3s-agent-1",
            {"app": "web"},
            ("ReplicaSet", "web-7d9f8b6c5"),
            [{"name": "data", "persistentVolumeClaim": {"claimName": web.pvc}}],
        )
    )
    objs.append(
        pod_object(
            "gitea-0",
            "apps",
            "k3s-server-3",
            {"app": "gitea"},
            ("StatefulSet", "gitea"),
            [{"name": "data", "persistentVolumeClaim": {"claimName": "gitea-data"}}],
        )
    )
    objs.append(
        pod_object(
            "pg-main-1",
            CNPG_NS,
            "k3s-agent-2",
            {"cnpg.io/cluster": "pg-main"},
            ("Cluster", "pg-main"),
            [{"name": "pgdata", "persistentVolumeClaim": {"claimName": "pg-main-1"}}],
        )
    )
    objs.append(
        pod_object(
            "pg-auth-1",
            CNPG_NS,
            "k3s-server-1",
            {"cnpg.io/cluster": "pg-auth"},
            ("Cluster", "pg-auth"),
            [],
        )
    )
    objs.append(
        pod_object(
            "coredns-6799fbcd5-7kq2m",
            "kube-system",
            "k3s-server-1",
            {"k8s-app": "kube-dns"},
            ("ReplicaSet", "coredns-6799fbcd5"),
        )
    )
    objs.append(
        pod_object(
            "grafana-5c9d7f7b8-q9vtn",
            "monitoring",
            "k3s-server-2",
            {"app": "grafana"},
            ("ReplicaSet", "grafana-5c9d7f7b8"),
            [{"name": "storage", "persistentVolumeClaim": {"claimName": "grafana-data"}}],
        )
    )
    objs.append(
        pod_object(
            "podinfo-6f9b8c7d5-m4k2x",
            "apps",
            "k3s-agent-2",
            {"app": "podinfo"},
            ("ReplicaSet", "podinfo-6f9b8c7d5"),
        )
    )
    objs.append(
        pod_object(
            "drbot-worker-6b7c9d-4hx2p",
            "drbot",
            "k3s-agent-2",
            {"app": "drbot"},
            ("ReplicaSet", "drbot-worker-6b7c9d"),
        )
    )
    # Blocks evicting the only web pod: minAvailable 1 of 1.
    objs.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "apps", "generation": 1},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            "status": {
                "currentHealthy": 1,
                "desiredHealthy": 1,
                "disruptionsAllowed": 0,
                "expectedPods": 1,
                "observedGeneration": 1,
            },
        }
    )
    objs.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "coredns", "namespace": "kube-system", "generation": 1},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}}},
            "status": {
                "currentHealthy": 1,
                "desiredHealthy": 0,
                "disruptionsAllowed": 1,
                "expectedPods": 1,
                "observedGeneration": 1,
            },
        }
    )
    return objs

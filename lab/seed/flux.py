"""The Flux part of the seed: the Git source and its credential, the Helm repositories, the
Kustomizations (one suspended) and the HelmReleases (grafana's failing its upgrade).

`REVISION` and `GRAFANA_FAILURE` are also what the lab's Flux controller reports on reconcile;
`git_repository`, `kustomization` and `git_credentials` are also what the lab's `flux-bootstrap`
applies and the lab's bootstrap Secret file holds.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from lab.world import FLUX_NS, LONGHORN_NS, ts


def _flux_ready(ok: bool, message: str, when: datetime, generation: int = 1) -> list[dict]:
    return [
        {
            "type": "Ready",
            "status": "True" if ok else "False",
            "reason": "ReconciliationSucceeded" if ok else "UpgradeFailed",
            "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": ts(when),
        }
    ]


FLEET_URL = "ssh://git@github.com/homelab/fleet"
FLEET_BRANCH = "main"
FLEET_PATH = "./clusters/homelab"
BOOTSTRAP_NAME = FLUX_NS  # flux bootstrap names its GitRepository, Kustomization and Secret so
GITHUB_HOST_KEY = (  # GitHub's published ed25519 host key (public)
    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
)
REVISION = "main@sha1:5f1c0a3b9e7d24c6a8f0e1d2c3b4a5968776a5b4"
GRAFANA_FAILURE = (
    "Helm upgrade failed for release monitoring/grafana with chart grafana@8.5.1: "
    "context deadline exceeded"
)


def kustomization(
    name: str, path: str, now: datetime, suspend: bool = False, depends: list[str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "interval": "10m0s",
        "path": path,
        "prune": True,
        "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        "suspend": suspend,
    }
    if depends:
        spec["dependsOn"] = [{"name": d} for d in depends]
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": name,
            "namespace": FLUX_NS,
            "generation": 1,
            "finalizers": ["finalizers.fluxcd.io"],
        },
        "spec": spec,
        "status": {
            "observedGeneration": 1,
            "lastAppliedRevision": REVISION,
            "lastAttemptedRevision": REVISION,
            "conditions": _flux_ready(
                True, f"Applied revision: {REVISION}", now - timedelta(minutes=7)
            ),
        },
    }


def fleet_kustomizations(now: datetime) -> list[dict[str, Any]]:
    """The Kustomizations the fleet repository's cluster path holds (what `flux-system` applies);
    `apps` waits for `infrastructure` (Longhorn, CNPG) through dependsOn, as scenario 4 needs."""
    return [
        kustomization("infrastructure", "./infrastructure", now),
        kustomization("apps", "./apps", now, depends=["infrastructure"]),
        kustomization("experiments", "./experiments", now, suspend=True),
    ]


def helmrelease(
    name: str, ns: str, chart: str, version: str, now: datetime, failing: bool = False
) -> dict[str, Any]:
    message = (
        GRAFANA_FAILURE
        if failing
        else f"Helm upgrade succeeded for release {ns}/{name}.v3 with chart {chart}@{version}"
    )
    hr: dict[str, Any] = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {
            "name": name,
            "namespace": ns,
            "generation": 1,
            "finalizers": ["finalizers.fluxcd.io"],
        },
        "spec": {
            "interval": "30m",
            "releaseName": name,
            "chart": {
                "spec": {
                    "chart": chart,
                    "version": version,
                    "sourceRef": {"kind": "HelmRepository", "name": chart, "namespace": FLUX_NS},
                }
            },
        },
        "status": {
            "observedGeneration": 1,
            "lastAttemptedRevision": version,
            "conditions": _flux_ready(not failing, message, now - timedelta(hours=2)),
        },
    }
    if failing:
        hr["status"]["conditions"].append(
            {
                "type": "Released",
                "status": "False",
                "reason": "UpgradeFailed",
                "message": message,
                "observedGeneration": 1,
                "lastTransitionTime": ts(now - timedelta(hours=2)),
            }
        )
        hr["status"]["failures"] = 3
        hr["status"]["upgradeFailures"] = 3
    return hr


PODINFO = ("apps", "podinfo")  # the HelmRelease the `apps` Kustomization applies
PODINFO_CHART = ("podinfo", "6.7.1")


def podinfo_release(now: datetime) -> dict[str, Any]:
    """podinfo's HelmRelease, applied by the `apps` Kustomization (kustomize-controller labels
    what it applies), drift detection at its default (off), release revision 3 in its history."""
    ns, name = PODINFO
    chart, version = PODINFO_CHART
    hr = helmrelease(name, ns, chart, version, now)
    hr["metadata"]["labels"] = {"kustomize.toolkit.fluxcd.io/name": "apps",
                                "kustomize.toolkit.fluxcd.io/namespace": FLUX_NS}
    hr["spec"]["chart"]["spec"]["sourceRef"]["name"] = chart
    hr["status"]["history"] = [release_snapshot(ns, name, chart, version, 3, now)]
    return hr


def release_snapshot(ns: str, name: str, chart: str, version: str, revision: int,
                     when: datetime) -> dict[str, Any]:
    """One entry of a HelmRelease's status.history (helm-controller api/v2 Snapshot)."""
    return {"name": name, "namespace": ns, "version": revision, "status": "deployed",
            "chartName": chart, "chartVersion": version, "appVersion": version,
            "configDigest": "sha256:" + "0" * 64, "digest": "sha256:" + f"{revision:064x}",
            "firstDeployed": ts(when - timedelta(days=30)), "lastDeployed": ts(when)}


def release_objects(ns: str, name: str) -> list[dict[str, Any]]:
    """What the chart of HelmRelease ``ns/name`` renders, as Helm applies it: helm-controller's
    post-renderer adds the ``helm.toolkit.fluxcd.io/name`` and ``/namespace`` labels
    (fluxcd/helm-controller internal/postrender/origin_labels.go); Helm adds the
    ``meta.helm.sh/release-*`` annotations and the chart the ``managed-by`` label."""
    if (ns, name) != PODINFO:
        return []
    return [{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name, "namespace": ns, "generation": 1,
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "Helm",
                       "helm.toolkit.fluxcd.io/name": name,
                       "helm.toolkit.fluxcd.io/namespace": ns},
            "annotations": {"meta.helm.sh/release-name": name,
                            "meta.helm.sh/release-namespace": ns},
        },
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name,
                                                       "image": "ghcr.io/stefanprodan/podinfo"}]}}},
        "status": {"replicas": 1, "readyReplicas": 1},
    }]


def git_credentials(key: str) -> dict[str, Any]:
    """The Git deploy key Secret of the GitRepository (a fake key: `key` stands for the private
    part), as `kubectl get secret -o yaml` would have backed it up."""
    private = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{key}\n-----END OPENSSH PRIVATE KEY-----\n"
    data = {
        "identity": private,
        "identity.pub": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIdrbotlabfleetdeploykey flux\n",
        "known_hosts": GITHUB_HOST_KEY + "\n",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": BOOTSTRAP_NAME, "namespace": FLUX_NS},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def git_repository(
    now: datetime, url: str = FLEET_URL, branch: str = FLEET_BRANCH, secret: str = BOOTSTRAP_NAME
) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": BOOTSTRAP_NAME, "namespace": FLUX_NS, "generation": 1},
        "spec": {
            "interval": "1m0s",
            "url": url,
            "ref": {"branch": branch},
            "secretRef": {"name": secret},
        },
        "status": {
            "observedGeneration": 1,
            # source-controller's Artifact: path and url are required (api/v1 artifact types)
            "artifact": {
                "path": f"gitrepository/{FLUX_NS}/{BOOTSTRAP_NAME}/{REVISION[-40:]}.tar.gz",
                "url": f"http://source-controller.{FLUX_NS}.svc.cluster.local./gitrepository/"
                f"{FLUX_NS}/{BOOTSTRAP_NAME}/{REVISION[-40:]}.tar.gz",
                "revision": REVISION,
                "lastUpdateTime": ts(now),
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Succeeded",
                    "message": f"stored artifact for revision '{REVISION}'",
                    "observedGeneration": 1,
                    "lastTransitionTime": ts(now - timedelta(hours=1)),
                }
            ],
        },
    }


def flux_objects(now: datetime, git_key: str, longhorn: str = "1.10.1") -> list[dict[str, Any]]:
    repos = [
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": chart, "namespace": FLUX_NS, "generation": 1},
            "spec": {"interval": "1h", "url": url},
            "status": {
                "observedGeneration": 1,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Succeeded",
                        "message": "stored artifact",
                        "observedGeneration": 1,
                        "lastTransitionTime": ts(now),
                    }
                ],
            },
        }
        for chart, url in (
            ("longhorn", "https://charts.longhorn.io"),
            ("cloudnative-pg", "https://cloudnative-pg.github.io/charts"),
            ("grafana", "https://grafana.github.io/helm-charts"),
            ("podinfo", "https://stefanprodan.github.io/podinfo"),
        )
    ]
    return [
        git_credentials(git_key),
        git_repository(now),
        *repos,
        kustomization(BOOTSTRAP_NAME, FLEET_PATH, now),
        *fleet_kustomizations(now),
        helmrelease("longhorn", LONGHORN_NS, "longhorn", longhorn, now),
        helmrelease("cloudnative-pg", "cnpg-system", "cloudnative-pg", "0.22.1", now),
        helmrelease("grafana", "monitoring", "grafana", "8.5.1", now, failing=True),
        podinfo_release(now),
        *release_objects(*PODINFO),
    ]

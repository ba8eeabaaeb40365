"""/dr reconcile --object against the lab's helm-controller: a deleted object of a Helm release
comes back (forced upgrade when drift detection is off, a plain reconcile when it is on), and a
missing object no release of the Kustomization installs is a plain failure, not Ready."""

from __future__ import annotations

from typing import Any

import pytest

from lab import Lab
from tests.bot.harness import Harness

HR = ("helm.toolkit.fluxcd.io/v2", "helmreleases", "apps", "podinfo")


@pytest.fixture
def apps_api(lab: Lab) -> Any:
    from kubernetes import client, config

    return client.AppsV1Api(config.new_client_from_config(str(lab.kubeconfig)))


def podinfo(lab: Lab) -> dict[str, Any] | None:
    return lab.world.kube_object("apps/v1", "deployments", "apps", "podinfo")


def hr_patches(lab: Lab) -> list[dict[str, Any]]:
    return [r.body for r in lab.world.kube_requests()
            if r.method == "PATCH" and r.path.endswith("/namespaces/apps/helmreleases/podinfo")]


def test_a_deleted_helm_object_comes_back_through_a_forced_upgrade(
        drbot_lab: Harness, lab: Lab, apps_api: Any) -> None:
    apps_api.delete_namespaced_deployment("podinfo", "apps")
    assert podinfo(lab) is None
    job_id = drbot_lab.say("/dr reconcile apps --object deployment/apps/podinfo",
                           who="carol").job_id
    drbot_lab.wait_status(job_id, "succeeded", timeout=90)
    drbot_lab.wait_settled(job_id)
    back = podinfo(lab)
    assert back is not None
    assert back["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "podinfo"
    hr = lab.world.kube_object(*HR)
    assert hr is not None
    annotations = hr["metadata"]["annotations"]
    token = annotations["reconcile.fluxcd.io/requestedAt"]
    assert annotations["reconcile.fluxcd.io/forceAt"] == token  # helm-controller needs both
    assert hr["status"]["lastHandledForceAt"] == token
    assert hr["status"]["history"][0]["version"] == 4  # an upgrade: a new release revision
    final = drbot_lab.frontend.replies(job_id)[-1]
    assert ("deployment/apps/podinfo: it is back after a forced upgrade of HelmRelease "
            "apps/podinfo") in final


def test_with_drift_detection_enabled_a_plain_reconcile_brings_it_back(
        drbot_lab: Harness, lab: Lab, apps_api: Any) -> None:
    hr = lab.world.kube_object(*HR)
    assert hr is not None
    hr["spec"]["driftDetection"] = {"mode": "enabled"}
    lab.world.put([hr])
    apps_api.delete_namespaced_deployment("podinfo", "apps")
    job_id = drbot_lab.say("/dr reconcile apps --object deployment/apps/podinfo",
                           who="carol").job_id
    drbot_lab.wait_status(job_id, "succeeded", timeout=90)
    drbot_lab.wait_settled(job_id)
    assert podinfo(lab) is not None
    patches = hr_patches(lab)
    assert patches, "drbot reconciled the HelmRelease"
    assert all("reconcile.fluxcd.io/forceAt" not in (p.get("metadata") or {}).get(
        "annotations", {}) for p in patches)
    after = lab.world.kube_object(*HR)
    assert after is not None and after["status"]["history"][0]["version"] == 3  # no upgrade
    assert "it is back after a reconcile of HelmRelease apps/podinfo" in \
        drbot_lab.frontend.replies(job_id)[-1]


def test_a_present_object_needs_no_helm_action(drbot_lab: Harness, lab: Lab) -> None:
    job_id = drbot_lab.say("/dr reconcile apps --object deployment/apps/podinfo",
                           who="carol").job_id
    drbot_lab.wait_status(job_id, "succeeded", timeout=90)
    drbot_lab.wait_settled(job_id)
    assert not hr_patches(lab)
    assert "deployment/apps/podinfo: it was there already" in \
        drbot_lab.frontend.replies(job_id)[-1]


def test_a_missing_object_no_release_installs_fails_plainly(drbot_lab: Harness,
                                                             lab: Lab) -> None:
    job_id = drbot_lab.say("/dr reconcile apps --object deployment/web/frontend",
                           who="carol").job_id
    drbot_lab.wait_status(job_id, "failed", timeout=90)
    text = drbot_lab.wait_reply(job_id, "failed at step 'object'")
    assert "deployment web/frontend is still missing" in text
    assert "no HelmRelease of it installs into web" in text
    assert not hr_patches(lab)


def test_an_object_kind_drbot_cannot_read_is_refused_at_once(drbot_lab: Harness) -> None:
    reply = drbot_lab.say("/dr reconcile apps --object configmap/apps/podinfo", who="carol")
    assert not reply.ok and reply.job_id is None
    assert "'configmap/apps/podinfo' is not a valid kind/namespace/name" in reply.text

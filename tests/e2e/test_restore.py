"""/dr restore end to end against the simulated homelab (alice requests, bob approves)."""

from __future__ import annotations

from typing import Any

import kubernetes

from lab import Lab
from tests.bot.harness import Harness, wait_until

RUN = 90.0
FLUX = {"kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}


def obj(lab: Lab, api: str, plural: str, ns: str | None, name: str) -> dict[str, Any]:
    return lab.world.kube_object(api, plural, ns, name) or {}


def snapshot(lab: Lab) -> list[dict[str, Any]]:
    """Every object a restore could touch, as the API holds it."""
    api = kubernetes.config.new_client_from_config(str(lab.kubeconfig))
    custom = kubernetes.client.CustomObjectsApi(api)
    lists = [custom.list_cluster_custom_object(g, v, p)["items"] for g, v, p in (
        ("longhorn.io", "v1beta2", "volumes"), ("kustomize.toolkit.fluxcd.io", "v1",
                                                "kustomizations"),
        ("apps", "v1", "deployments"))]
    core = kubernetes.client.CoreV1Api(api)
    lists += [api.sanitize_for_serialization(core.list_persistent_volume_claim_for_all_namespaces()
                                             .items),
              api.sanitize_for_serialization(core.list_persistent_volume().items)]
    return lists


def web_deployment(lab: Lab) -> None:
    """The app that mounts apps/web-data, applied by Flux's `apps` Kustomization."""
    api = kubernetes.config.new_client_from_config(str(lab.kubeconfig))
    kubernetes.client.AppsV1Api(api).create_namespaced_deployment("apps", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web", **FLUX}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "containers": [{"name": "web", "image": "nginx"}],
                     "volumes": [{"name": "data",
                                  "persistentVolumeClaim": {"claimName": "web-data"}}]}}}})
    wait_until(lambda: ((obj(lab, "apps/v1", "deployments", "apps", "web") or {}).get("status")
                        or {}).get("readyReplicas") == 1, RUN, "the web pod to run")


def planned(drbot: Harness, text: str, status: str = "awaiting_approval") -> str:
    reply = drbot.say(text, who="alice")
    assert reply.ok and reply.job_id, reply.text
    job = drbot.wait_status(reply.job_id, status, "refused", "planned", timeout=RUN)
    assert job.status == status, job.error
    return reply.job_id


def run(drbot: Harness, text: str) -> str:
    job_id = planned(drbot, text)
    assert drbot.say(f"/dr approve {job_id}", who="bob").ok
    job = drbot.wait_status(job_id, "succeeded", "failed", timeout=RUN)
    assert job.status == "succeeded", job.error
    return job.summary or ""


def test_restore_into_a_new_pvc_beside_the_old(drbot_lab: Harness, lab: Lab) -> None:
    old = obj(lab, "v1", "persistentvolumeclaims", "apps", "gitea-data")
    summary = run(drbot_lab, "/dr restore apps/gitea-data")
    assert "beside apps/gitea-data" in summary
    name = summary.split("into PVC apps/")[1].split(" ")[0]
    assert name.startswith("gitea-data-restored-")
    pvc = wait_until(lambda: obj(lab, "v1", "persistentvolumeclaims", "apps", name)
                     .get("status", {}).get("phase") == "Bound"
                     and obj(lab, "v1", "persistentvolumeclaims", "apps", name), 20, "Bound")
    volume = obj(lab, "longhorn.io/v1beta2", "volumes", "longhorn-system",
                 pvc["spec"]["volumeName"])
    assert "&volume=pvc-" in volume["spec"]["fromBackup"]
    assert volume["status"]["state"] == "detached" and not volume["status"]["restoreRequired"]
    assert volume["spec"]["numberOfReplicas"] == 3  # as many as the volume it came from
    assert obj(lab, "v1", "persistentvolumeclaims", "apps", "gitea-data")["spec"] == old["spec"]


def test_a_restore_longhorn_has_no_room_for_is_refused_before_anything_is_created(
        drbot_lab: Harness, lab: Lab) -> None:
    """apps/archive's 50 GiB does not fit the lab's disks (60 of 100 GiB free, and Longhorn's
    replica scheduler keeps 25 % free): the volume would be created and never attach."""
    before = snapshot(lab)
    job_id = planned(drbot_lab, "/dr restore apps/archive", "refused")
    assert "Longhorn has no room for a 50.0 GiB replica of the restored volume" in \
        (drbot_lab.job(job_id).error or "")
    assert snapshot(lab) == before


def test_beside_a_pvc_in_use_is_allowed_and_touches_nothing_in_use(drbot_lab: Harness,
                                                                     lab: Lab) -> None:
    """The lab's pod web-7d9f8b6c5-x2x7q mounts apps/web-data: a restore beside it goes ahead
    (looking inside a backup is what it is for), and the PVC, its PV and the pod stay as they
    were."""
    pod = obj(lab, "v1", "pods", "apps", "web-7d9f8b6c5-x2x7q")
    assert any((v.get("persistentVolumeClaim") or {}).get("claimName") == "web-data"
               for v in pod["spec"]["volumes"])
    old = obj(lab, "v1", "persistentvolumeclaims", "apps", "web-data")
    old_pv = obj(lab, "v1", "persistentvolumes", None, old["spec"]["volumeName"])
    summary = run(drbot_lab, "/dr restore apps/web-data")
    assert "beside apps/web-data" in summary
    name = summary.split("into PVC apps/")[1].split(" ")[0]
    assert name.startswith("web-data-restored-")
    wait_until(lambda: obj(lab, "v1", "persistentvolumeclaims", "apps", name)
               .get("status", {}).get("phase") == "Bound", 20, "the new PVC Bound")
    assert obj(lab, "v1", "persistentvolumeclaims", "apps", "web-data")["spec"] == old["spec"]
    assert obj(lab, "v1", "persistentvolumes", None, old["spec"]["volumeName"])["spec"] == \
        old_pv["spec"]
    assert obj(lab, "v1", "pods", "apps", "web-7d9f8b6c5-x2x7q")["metadata"]["uid"] == \
        pod["metadata"]["uid"]
    touched = [r for r in lab.world.kube_requests() if r.method in ("PATCH", "PUT", "DELETE")
               and ("/persistentvolumeclaims/web-data" in r.path or "/pods/" in r.path
                    or r.path.endswith("/" + old["spec"]["volumeName"]))]
    assert touched == []


def test_in_place_while_a_pod_uses_it_stays_refused(drbot_lab: Harness) -> None:
    """--replace swaps the PVC under its users, so they must be stopped first; a bare pod that
    no Deployment or StatefulSet owns cannot be, and the restore is refused."""
    job_id = planned(drbot_lab, "/dr restore apps/web-data --replace", "refused")
    assert "pods web-7d9f8b6c5-x2x7q use apps/web-data but no Deployment or StatefulSet of " \
        "apps mounts it" in (drbot_lab.job(job_id).error or "")
    job_id = planned(drbot_lab, "/dr restore apps/web-data --backup backup-nope --replace",
                     "refused")
    error = drbot_lab.job(job_id).error or ""
    assert "no Longhorn backup is called backup-nope" in error and "backup-" in error


def test_replace_while_a_pod_uses_the_pvc(drbot_lab: Harness, lab: Lab) -> None:
    web_deployment(lab)
    before = snapshot(lab)
    planned(drbot_lab, "/dr restore apps/web-data --replace --dry-run", "planned")
    assert snapshot(lab) == before
    old_pv = obj(lab, "v1", "persistentvolumeclaims", "apps", "web-data")["spec"]["volumeName"]

    summary = run(drbot_lab, "/dr restore apps/web-data --replace")
    assert "swapped it in" in summary
    pvc = obj(lab, "v1", "persistentvolumeclaims", "apps", "web-data")
    assert pvc["spec"]["volumeName"] != old_pv
    assert obj(lab, "v1", "persistentvolumes", None, old_pv)["spec"][
        "persistentVolumeReclaimPolicy"] == "Retain"
    assert obj(lab, "apps/v1", "deployments", "apps", "web")["spec"]["replicas"] == 1
    assert not obj(lab, "kustomize.toolkit.fluxcd.io/v1", "kustomizations", "flux-system",
                   "apps")["spec"]["suspend"]
    patches = [r.body for r in lab.world.kube_requests() if r.method == "PATCH"
               and r.path.endswith("/kustomizations/apps")]
    assert patches[0]["spec"]["suspend"] is True and patches[-1]["spec"]["suspend"] is False
    scaled = [r.body["spec"]["replicas"] for r in lab.world.kube_requests()
              if r.method == "PATCH" and r.path.endswith("/deployments/web")]
    assert scaled == [0, 1]


def test_lost_with_restores_every_volume_the_host_lost_in_one_job(drbot_lab: Harness,
                                                                 lab: Lab) -> None:
    """pve2 fails: web-data, media and grafana-data had no healthy copy elsewhere. One job
    restores the three, beside their PVCs (which still exist), and says how to swap them in."""
    from tests.e2e.test_rebuild_cluster import job_events
    from tests.e2e.test_rebuild_host import host_failed
    from tests.e2e.test_rebuild_node import refusal

    host_failed(lab, "pve2")
    custom = kubernetes.client.CustomObjectsApi(
        kubernetes.config.new_client_from_config(str(lab.kubeconfig)))

    def failed_on_pve2() -> bool:
        items = custom.list_cluster_custom_object("longhorn.io", "v1beta2", "replicas")["items"]
        return all(r["spec"].get("failedAt") for r in items
                   if r["spec"]["nodeID"] in ("k3s-server-3", "k3s-agent-1", "k3s-agent-2"))
    wait_until(failed_on_pve2, RUN, "the replicas on pve2 failed")
    assert "give it alone" in refusal(drbot_lab, "/dr restore apps/web-data --lost-with pve2")
    reply = drbot_lab.say("/dr restore --lost-with pve2", who="alice")
    assert reply.ok and reply.job_id, reply.text
    job_id = reply.job_id
    drbot_lab.wait_status(job_id, "awaiting_approval", timeout=RUN)
    assert drbot_lab.say(f"/dr approve {job_id}", who="bob").ok
    job = drbot_lab.wait_status(job_id, "succeeded", "failed", timeout=RUN)
    assert job.status == "succeeded", job.error
    restored = {r["pvc"].split("-restored-")[0] for r in job.steps[0].result["restored"]}
    assert restored == {"apps/web-data", "apps/media", "monitoring/grafana-data"}
    for ref in (r["pvc"] for r in job.steps[0].result["restored"]):
        ns, name = ref.split("/")
        assert obj(lab, "v1", "persistentvolumeclaims", ns, name)["spec"]["volumeName"]
    assert "swap it in with /dr restore apps/media --backup backup-" in (job.summary or "")
    assert "3/3 volumes restored (" in job_events(drbot_lab, job_id)  # the card's last line

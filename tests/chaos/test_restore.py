"""restore (beside the old PVC) and restore --replace, with the worker SIGKILLed right after each
externally visible effect on the Kubernetes API, then retried on a new worker. After the retry:
the backup restored into exactly one new volume (never twice); for --replace the old PVC name
binds the restored PV, the old PV is kept (Retain), the workload is back at its replica count
with no leftover annotation, the Kustomization is resumed and no restored copy is left behind;
no lock is left and the thread says what the whole job did."""

from __future__ import annotations

from typing import Any

import pytest

from lab import Lab
from lab.world import LONGHORN_NS
from tests.bot.harness import Harness
from tests.chaos.effects import Effect, kill_after, recording, retry_on_a_new_worker
from tests.chaos.test_rebuild_node import held_locks
from tests.e2e.test_restore import obj, planned, web_deployment

LH = f"/apis/longhorn.io/v1beta2/namespaces/{LONGHORN_NS}"
PVCS = "/api/v1/namespaces/apps/persistentvolumeclaims"
FLUX = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps$"
WEB = "/apis/apps/v1/namespaces/apps/deployments/web$"

BESIDE = [
    Effect("restore Volume created", "POST", f"^{LH}/volumes$"),
    Effect("PV created", "POST", "^/api/v1/persistentvolumes$"),
    Effect("PVC created", "POST", f"^{PVCS}$"),
]
REPLACE = [
    Effect("Kustomization suspended", "PATCH", FLUX),
    Effect("workload scaled to 0", "PATCH", WEB),
    Effect("restore Volume created", "POST", f"^{LH}/volumes$"),
    Effect("restored PVC created", "POST", f"^{PVCS}$"),
    Effect("old PV set to Retain", "PATCH", "^/api/v1/persistentvolumes/", nth=1),
    Effect("first PVC deleted", "DELETE", f"^{PVCS}/"),
    Effect("restored PV bound to the name", "PATCH", "^/api/v1/persistentvolumes/", nth=2),
    Effect("PVC re-created on it", "POST", f"^{PVCS}$", nth=2),
    Effect("workload scaled up", "PATCH", WEB, nth=2),
    Effect("Kustomization resumed", "PATCH", FLUX, nth=2),
]


def restored_volumes(lab: Lab) -> list[dict[str, Any]]:
    """Every Longhorn volume created from a backup (the seed has none)."""
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(str(lab.kubeconfig)))
    found = api.list_namespaced_custom_object("longhorn.io", "v1beta2", LONGHORN_NS, "volumes")
    return [v for v in found["items"] if (v.get("spec") or {}).get("fromBackup")]


def pvc_names(lab: Lab) -> list[str]:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(lab.kubeconfig)))
    return sorted(p.metadata.name for p in api.list_namespaced_persistent_volume_claim("apps").items)


def common(drbot: Harness, lab: Lab, job_id: str) -> str:
    """The invariants of both kinds; returns the final thread message."""
    job = drbot.job(job_id)
    assert job.status == "succeeded", job.error
    assert len(restored_volumes(lab)) == 1, [v["metadata"]["name"] for v in restored_volumes(lab)]
    assert held_locks(drbot) == []
    drbot.wait_settled(job_id)
    final = drbot.frontend.replies(job_id)[-1]
    assert "(in 2 attempts)" in final
    return final


@pytest.mark.parametrize("effect", BESIDE, ids=str)
def test_restore_beside_killed_after_an_effect_then_retried(drbot_lab: Harness, lab: Lab,
                                                            effect: Effect) -> None:
    old = obj(lab, "v1", "persistentvolumeclaims", "apps", "gitea-data")
    before = pvc_names(lab)
    job_id = planned(drbot_lab, "/dr restore apps/gitea-data")
    held = kill_after(drbot_lab, lab, job_id, effect, f"/dr approve {job_id}")
    retry_on_a_new_worker(drbot_lab, job_id)
    with recording("restore", effect, held):
        final = common(drbot_lab, lab, job_id)
        added = sorted(set(pvc_names(lab)) - set(before))
        assert len(added) == 1 and added[0].startswith("gitea-data-restored-"), added
        pvc = obj(lab, "v1", "persistentvolumeclaims", "apps", added[0])
        assert pvc["spec"]["volumeName"] == restored_volumes(lab)[0]["metadata"]["name"]
        assert obj(lab, "v1", "persistentvolumeclaims", "apps", "gitea-data")["spec"] == old["spec"]
        assert f"into PVC apps/{added[0]}" in final


@pytest.mark.parametrize("effect", REPLACE, ids=str)
def test_restore_replace_killed_after_an_effect_then_retried(drbot_lab: Harness, lab: Lab,
                                                             effect: Effect) -> None:
    web_deployment(lab)
    old_pv = obj(lab, "v1", "persistentvolumeclaims", "apps", "web-data")["spec"]["volumeName"]
    before = pvc_names(lab)
    job_id = planned(drbot_lab, "/dr restore apps/web-data --replace")
    held = kill_after(drbot_lab, lab, job_id, effect, f"/dr approve {job_id}")
    retry_on_a_new_worker(drbot_lab, job_id)
    with recording("restore --replace", effect, held):
        final = common(drbot_lab, lab, job_id)
        assert pvc_names(lab) == before  # no restored copy left beside it
        pvc = obj(lab, "v1", "persistentvolumeclaims", "apps", "web-data")
        new_pv = pvc["spec"]["volumeName"]
        assert new_pv != old_pv
        assert new_pv == obj(lab, "v1", "persistentvolumes", None, new_pv)["metadata"]["name"]
        assert obj(lab, "v1", "persistentvolumes", None, old_pv)["spec"][
            "persistentVolumeReclaimPolicy"] == "Retain"
        web = obj(lab, "apps/v1", "deployments", "apps", "web")
        assert web["spec"]["replicas"] == 1
        assert not any("drbot" in a for a in (web["metadata"].get("annotations") or {}))
        assert not obj(lab, "kustomize.toolkit.fluxcd.io/v1", "kustomizations", "flux-system",
                       "apps")["spec"].get("suspend")
        assert "swapped it in" in final and old_pv in final

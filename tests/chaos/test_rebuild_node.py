"""rebuild-node with its worker SIGKILLed right after each externally visible effect it has on
the Kubernetes and Proxmox APIs, then retried on a new worker. After the retry the runbook's invariants hold:
one VM, created at most once; the Node Ready; three healthy etcd members; every attached volume
that had a replica on the node waited for and healthy; no lock left; the thread tells the truth
about what the whole job did."""

from __future__ import annotations

from typing import Any

import pytest

from lab import Lab
from lab.world import LONGHORN_NS
from tests.bot.harness import Harness
from tests.chaos.effects import (
    Effect,
    kill_after,
    recording,
    retry_on_a_new_worker,
    stopped_at_the_stale_terraform_lock,
)
from tests.e2e.test_rebuild_node import crash, is_ready, requested, requests_to, step

NODE, VMID, HOST = "k3s-server-3", 103, "pve2"
LH = f"/apis/longhorn.io/v1beta2/namespaces/{LONGHORN_NS}"
EFFECTS = [
    Effect("cordon", "PATCH", f"^/api/v1/nodes/{NODE}$"),
    Effect("delete Node", "DELETE", f"^/api/v1/nodes/{NODE}$"),
    pytest.param(Effect("first replica deleted", "DELETE", f"^{LH}/replicas/"),
                 marks=pytest.mark.fast),
    Effect("Longhorn Node unschedulable", "PATCH", f"^{LH}/nodes/{NODE}$"),
    Effect("Longhorn Node deleted", "DELETE", f"^{LH}/nodes/{NODE}$"),
    Effect("VM destroyed", "DELETE", f"/nodes/{HOST}/qemu/{VMID}$", api="pve"),
    # Terraform's create applied, the machine (worker and Terraform) dead before Terraform
    # wrote its state: the retry finds a VM its state does not know.
    Effect("VM created, state unwritten", "POST", f"^/api2/json/nodes/{HOST}/qemu$", api="pve",
           machine=True),
]


def volumes_on(lab: Lab, node: str) -> dict[str, str]:
    """Volume name -> state, of every Longhorn volume with a replica on ``node``."""
    replicas = [lab.world.kube_object("longhorn.io/v1beta2", "replicas", LONGHORN_NS, name)
                for name in replica_names(lab)]
    names = {r["spec"]["volumeName"] for r in replicas if r and r["spec"].get("nodeID") == node}
    return {name: volume(lab, name)["status"]["state"] for name in names}


def replica_names(lab: Lab) -> list[str]:
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(str(lab.kubeconfig)))
    found = api.list_namespaced_custom_object("longhorn.io", "v1beta2", LONGHORN_NS, "replicas")
    return [item["metadata"]["name"] for item in found["items"]]


def volume(lab: Lab, name: str) -> dict[str, Any]:
    found = lab.world.kube_object("longhorn.io/v1beta2", "volumes", LONGHORN_NS, name)
    assert found, name
    return found


def held_locks(drbot: Harness) -> list[str]:
    return sorted(k.decode() for k in drbot.redis.scan_iter("drbot:lock:*"))


@pytest.mark.parametrize("effect", EFFECTS, ids=str)
def test_killed_after_an_effect_then_retried_keeps_every_invariant(
        drbot_lab: Harness, lab: Lab, effect: Effect) -> None:
    had = volumes_on(lab, NODE)
    attached = sorted(v for v, state in had.items() if state == "attached")
    assert attached, "the seed must give the node a replica of an attached volume"
    crash(lab, NODE)
    job_id = requested(drbot_lab, f"/dr rebuild-node {NODE}")
    held = kill_after(drbot_lab, lab, job_id, effect, f"/dr approve {job_id}")
    retry_on_a_new_worker(drbot_lab, job_id)
    job = drbot_lab.job(job_id)
    note = f"{held} (retry stops at the stale lock)" if effect.machine else held
    with recording("rebuild-node", effect, note):
        if effect.machine:
            stopped_at_the_stale_terraform_lock(drbot_lab, job_id)
            assert requests_to(lab, "POST", f"/nodes/{HOST}/qemu") == 1  # never a second create
            assert held_locks(drbot_lab) == []
            return
        assert job.status == "succeeded", job.error
        assert requests_to(lab, "POST", f"/nodes/{HOST}/qemu") == 1  # one Terraform create
        assert requests_to(lab, "DELETE", f"/qemu/{VMID}") == 1
        assert lab.world.vm(NODE).status == "running"
        assert is_ready(lab, NODE)
        members = lab.world.etcd_members()
        assert len(members) == 3 and all(m.healthy for m in members), members
        waited = step(drbot_lab, job_id, "wait for replicas").result
        assert sorted(waited["healthy"]) == attached  # every one, none forgotten by the retry
        assert all(volume(lab, v)["status"]["robustness"] == "healthy" for v in attached)
        assert held_locks(drbot_lab) == []
        drbot_lab.wait_settled(job_id)
        final = drbot_lab.frontend.replies(job_id)[-1]
        assert f"{NODE} rebuilt and Ready" in final and "etcd 3/3" in final
        assert f"VM {VMID}: destroyed" in final and "(0 added)" not in final
        pvcs = waited["pvcs"]
        assert len(pvcs) == len(attached) and all(p in final for p in pvcs)
        assert "(in 2 attempts)" in final

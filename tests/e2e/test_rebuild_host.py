"""/dr rebuild-host end to end against the simulated homelab (pve1: two servers; pve2: one server
and both agents)."""

from __future__ import annotations

from lab import Lab, world
from tests.bot.harness import Harness, wait_until
from tests.e2e.test_rebuild_node import (
    RUN,
    approved,
    is_ready,
    lab_state,
    mutations,
    refusal,
    requested,
    requests_to,
    said,
)


def on_host(host: str) -> list[str]:
    return [spec.name for spec in world.NODES if spec.host == host]


def host_failed(lab: Lab, host: str) -> None:
    lab.world.fail_host(host)
    wait_until(lambda: not any(is_ready(lab, n) for n in on_host(host)), 20,
               f"the nodes of {host} NotReady")


def test_host_with_two_servers_stops_with_the_cluster_reset_procedure(drbot_lab: Harness,
                                                                      lab: Lab) -> None:
    before = lab_state(lab)
    job_id = drbot_lab.say("/dr rebuild-host pve2 --dry-run", who="alice").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "planned", timeout=60)
    plan = said(drbot_lab, job_id, "Plan (dry run)")
    assert 'proxmox_virtual_environment_vm.k3s["k3s-agent-1"]' in plan
    assert "/dr restore apps/media" in plan  # its only healthy copies are on pve2
    # pve2 is alive and runs drbot: the preflight would refuse it now, and the dry run says so
    assert "drbot's own worker" in said(drbot_lab, job_id, "Preflight would refuse now")
    assert lab_state(lab) == before and mutations(lab) == []

    host_failed(lab, "pve1")
    text = refusal(drbot_lab, "/dr rebuild-host pve1")
    assert "etcd has lost quorum" in text
    for command in ("On k3s-server-3", "sudo systemctl stop k3s", "sudo k3s server --cluster-reset",
                    "--cluster-reset-restore-path=", "kubectl delete node k3s-server-1 k3s-server-2",
                    "/dr rebuild-host"):
        assert command in text
    assert mutations(lab) == []


def test_replaced_host_is_rebuilt_and_its_lost_volumes_are_reported(drbot_lab: Harness,
                                                                     lab: Lab) -> None:
    members = {m.node: m.id for m in lab.world.etcd_members()}
    host_failed(lab, "pve2")
    lab.world.replace_host("pve2")
    job_id = approved(drbot_lab, requested(drbot_lab, "/dr rebuild-host pve2"))
    job = drbot_lab.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=RUN)
    assert job.status == "succeeded", job.error
    assert all(is_ready(lab, n) for n in on_host("pve2"))
    assert requests_to(lab, "POST", "/nodes/pve2/qemu") == 3
    back = {m.node: m for m in lab.world.etcd_members()}
    assert back["k3s-server-3"].id != members["k3s-server-3"] and back["k3s-server-3"].healthy
    final = said(drbot_lab, job_id, "pve2 rebuilt")
    assert "lost their data with pve2" in final
    for pvc in ("apps/web-data", "apps/media", "monitoring/grafana-data"):
        assert f"/dr restore {pvc}" in final
    assert "/dr restore apps/gitea-data" not in final  # it kept a healthy copy on pve1
    assert "steps: delete Nodes" in final

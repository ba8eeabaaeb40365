"""rebuild-host (pve2 replaced: k3s-server-3 and both agents), with the worker SIGKILLed right
after each externally visible effect on the Kubernetes and Proxmox APIs, then retried on a new
worker. After the retry: each of the three VMs created once and running, every Node Ready,
three healthy etcd members, the volumes lost with the host still reported for restore (the
retry must not forget them), no lock left, and the thread tells what the whole job did."""

from __future__ import annotations

import pytest

from lab import Lab
from tests.bot.harness import Harness
from tests.chaos.effects import (
    Effect,
    kill_after,
    recording,
    retry_on_a_new_worker,
    stopped_at_the_stale_terraform_lock,
)
from tests.chaos.test_rebuild_node import held_locks
from tests.e2e.test_rebuild_host import host_failed, on_host
from tests.e2e.test_rebuild_node import is_ready, requested, requests_to

HOST = "pve2"
LOST = ("apps/web-data", "apps/media", "monitoring/grafana-data")
EFFECTS = [
    Effect("first Node deleted", "DELETE", "^/api/v1/nodes/"),
    Effect("second Node deleted", "DELETE", "^/api/v1/nodes/", nth=2),
    Effect("last Node deleted", "DELETE", "^/api/v1/nodes/", nth=3),
    Effect("first VM created", "POST", f"/nodes/{HOST}/qemu$", api="pve"),
    Effect("last VM created", "POST", f"/nodes/{HOST}/qemu$", api="pve", nth=3),
    Effect("VM created, state unwritten", "POST", f"/nodes/{HOST}/qemu$", api="pve",
           machine=True),
]


@pytest.mark.parametrize("effect", EFFECTS, ids=str)
def test_rebuild_host_killed_after_an_effect_then_retried(drbot_lab: Harness, lab: Lab,
                                                         effect: Effect) -> None:
    names = on_host(HOST)
    host_failed(lab, HOST)
    lab.world.replace_host(HOST)
    job_id = requested(drbot_lab, f"/dr rebuild-host {HOST}")
    held = kill_after(drbot_lab, lab, job_id, effect, f"/dr approve {job_id}")
    retry_on_a_new_worker(drbot_lab, job_id)
    note = f"{held} (retry stops at the stale lock)" if effect.machine else held
    with recording("rebuild-host", effect, note):
        if effect.machine:
            stopped_at_the_stale_terraform_lock(drbot_lab, job_id)
            assert requests_to(lab, "POST", f"/nodes/{HOST}/qemu") == 1  # never a second create
            assert held_locks(drbot_lab) == []
            return
        job = drbot_lab.job(job_id)
        assert job.status == "succeeded", job.error
        vms = lab.world.vms()
        assert all(vms[n].status == "running" for n in names), vms
        assert requests_to(lab, "POST", f"/nodes/{HOST}/qemu") == len(names)  # once each
        assert all(is_ready(lab, n) for n in names)
        members = lab.world.etcd_members()
        assert len(members) == 3 and all(m.healthy for m in members), members
        assert held_locks(drbot_lab) == []
        drbot_lab.wait_settled(job_id)
        final = drbot_lab.frontend.replies(job_id)[-1]
        assert f"{HOST} rebuilt" in final and "(in 2 attempts)" in final
        assert "(0 added)" not in final  # the VMs this job created are told, whichever attempt
        for pvc in LOST:
            assert f"/dr restore {pvc}" in final

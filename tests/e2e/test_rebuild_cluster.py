"""/dr rebuild-cluster end to end: refusals, then the four phases, each confirmed in the thread.

drbot runs standalone here (the test empties the inventory's `drbot_nodes`, as an operator
would after moving drbot off the cluster). alice requests; bob and carol approve.
"""

from __future__ import annotations

from typing import Any

import yaml

from bot.lab import Lab
from tests.bot.harness import Harness, wait_until

RUN = 240.0  # the whole cluster on a loaded two-core machine; every wait ends on its condition
PHRASE = '--confirm "rebuild the whole cluster"'
KS = "kustomize.toolkit.fluxcd.io/v1"


def suspended(lab: Lab) -> dict[str, bool]:
    return {name: bool(lab.world.kube_object(KS, "kustomizations", "flux-system", name)
                       ["spec"].get("suspend"))
            for name in ("flux-system", "infrastructure", "apps", "experiments")}


def pvc(lab: Lab, ns: str, name: str) -> dict[str, Any] | None:
    return lab.world.kube_object("v1", "persistentvolumeclaims", ns, name)


def standalone(lab: Lab) -> None:
    data = yaml.safe_load(lab.inventory_path.read_text())
    data["drbot_nodes"] = []
    lab.inventory_path.write_text(yaml.safe_dump(data, sort_keys=False))


def waiting_for(drbot: Harness, job_id: str, phase: int) -> None:
    def at() -> bool:
        job = drbot.job(job_id)
        assert job.status not in ("failed", "cancelled", "refused"), job.error
        step = next(s for s in job.steps if s.name == f"confirm phase {phase}")
        return step.status == "running"
    wait_until(at, RUN, f"job {job_id} to wait for phase {phase}")


def test_refused_with_a_wrong_phrase_and_with_one_approval(drbot_lab: Harness, lab: Lab) -> None:
    standalone(lab)
    reply = drbot_lab.say('/dr rebuild-cluster --confirm "rebuild it"', who="alice")
    assert not reply.ok and PHRASE[10:] in reply.text
    job_id = drbot_lab.say(f"/dr rebuild-cluster {PHRASE}", who="alice").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "awaiting_approval", timeout=RUN)
    assert not drbot_lab.say(f"/dr approve {job_id}", who="alice").ok  # not one's own
    reply = drbot_lab.say(f"/dr approve {job_id}", who="bob")
    assert "(1/2); waiting for more approvals" in reply.text
    assert drbot_lab.job(job_id).status == "awaiting_approval"
    assert not drbot_lab.say(f"/dr confirm {job_id} 1", who="alice").ok  # not running yet
    assert all(vm.exists for vm in lab.world.vms().values())


def test_dry_run_lists_the_plan_and_changes_nothing(drbot_lab: Harness, lab: Lab) -> None:
    standalone(lab)
    before = (lab.world.vms(), suspended(lab), pvc(lab, "apps", "web-data"))
    job_id = drbot_lab.say("/dr rebuild-cluster --dry-run", who="alice").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "planned", timeout=RUN)
    plan = drbot_lab.wait_reply(job_id, "terraform destroy")
    for line in ("destroy and re-create VM 101 (k3s-server-1) on pve1",
                 "restore apps/web-data from backup-", "suspend Kustomization flux-system/apps",
                 "Kustomization flux-system/experiments is suspended and stays so"):
        assert line in plan
    assert "suspend Kustomization flux-system/infrastructure" not in plan
    assert (lab.world.vms(), suspended(lab), pvc(lab, "apps", "web-data")) == before


def test_rebuild_runs_its_phases_with_the_apps_suspended_until_restored(
        drbot_lab: Harness, lab: Lab) -> None:
    standalone(lab)
    old_uuids = {n: vm.smbios_uuid for n, vm in lab.world.vms().items()}
    job_id = drbot_lab.say(f"/dr rebuild-cluster {PHRASE}", who="alice").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "awaiting_approval", timeout=RUN)
    drbot_lab.say(f"/dr approve {job_id}", who="bob")
    assert "queued to run" in drbot_lab.say(f"/dr approve {job_id}", who="carol").text

    waiting_for(drbot_lab, job_id, 1)
    assert not suspended(lab)["apps"] and all(vm.exists for vm in lab.world.vms().values())
    early = drbot_lab.say(f"/dr confirm {job_id} 2", who="alice")
    assert not early.ok and "not waiting for phase 2" in early.text
    assert drbot_lab.say(f"/dr confirm {job_id} 1", who="alice").ok  # the requester

    waiting_for(drbot_lab, job_id, 2)
    vms = lab.world.vms()
    assert all(vm.exists and vm.status == "running" for vm in vms.values())
    assert all(vm.smbios_uuid != old_uuids[n] for n, vm in vms.items())  # new machines
    assert pvc(lab, "apps", "web-data") is None  # the old datastore is gone
    assert not suspended(lab)["apps"]
    assert drbot_lab.say(f"/dr confirm {job_id} 2", who="bob").ok  # an approver

    waiting_for(drbot_lab, job_id, 3)
    assert suspended(lab) == {"flux-system": False, "infrastructure": False, "apps": True,
                              "experiments": True}
    assert pvc(lab, "apps", "web-data") is None
    assert drbot_lab.say(f"/dr confirm {job_id} 3", who="carol").ok

    waiting_for(drbot_lab, job_id, 4)
    assert suspended(lab)["apps"]  # still, with every volume restored
    for ns, name in (("apps", "web-data"), ("apps", "gitea-data"), ("databases", "pg-main-1"),
                     ("apps", "archive")):
        claim = pvc(lab, ns, name)
        assert claim and claim["spec"]["volumeName"] == f"restore-{ns}-{name}"
    assert drbot_lab.say(f"/dr confirm {job_id} 4", who="alice").ok

    job = drbot_lab.wait_status(job_id, "succeeded", "failed", timeout=RUN)
    assert job.status == "succeeded", job.error
    assert suspended(lab) == {"flux-system": False, "infrastructure": False, "apps": False,
                              "experiments": True}
    assert "6 volume(s) restored" in (job.summary or "")
    assert "Resumed: flux-system/apps" in (job.summary or "")

"""Rebuilds apply only the Terraform plan drbot checked: handlers.iac ``terraform_apply``
(rebuild-node, rebuild-host) and rebuild-cluster's phase 1, against the lab's terraform (its
own process, planning the bpg/proxmox VMs of ``lab.tf.json`` against a fake Proxmox cluster).

A configuration that drifted from the real VMs (here: a VM configured on another node, which
the provider can only honour by re-creating the VM) must never replace or destroy a running VM:
the plan is refused before anything is applied, with one line naming the resource, the action
and what to do. A saved plan the state moved away from is refused by Terraform; a retry plans
again, and after an apply that went through it finds nothing to do."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakepve import FakePve

from adapters import terraform
from adapters.errors import Conflict, Refused
from adapters.progress import Hooks
from adapters.terraform import TerraformConfig
from bot.config.inventory import Inventory
from bot.runbook import StepContext
from handlers import iac, rebuild_cluster
from lab.fakes.pve import TOKEN_NAME, TOKEN_SECRET, TOKEN_USER, PveLab, pve  # noqa: F401
from lab.terraform_stub import CONFIG, STATE, launcher
from lab.terraform_stub.proxmox import Proxmox as StubProxmox
from lab.terraform_stub.scripted import Knob
from lab.terraform_stub.ui import address
from tests.adapters.terraform_unchecked import unchecked_apply
from tests.support import Recorder

NODES = {"n1": ("pve1", 101), "n2": ("pve1", 102)}
ADDR = {name: address(name) for name in NODES}


@dataclass
class TfLab:
    """A Terraform workdir whose VMs exist in the fake Proxmox, and the adapter's settings."""

    root: Path
    config: TerraformConfig
    pve: FakePve
    log: Path

    def tf_config(self) -> dict[str, Any]:
        return json.loads((self.root / CONFIG).read_text())

    def configure(self, name: str, **values: Any) -> None:
        cfg = self.tf_config()
        cfg["vms"][name].update(values)
        (self.root / CONFIG).write_text(json.dumps(cfg))

    def state(self) -> bytes:
        return (self.root / STATE).read_bytes()

    def where(self, vmid: int) -> str | None:
        vm = self.pve.vm(vmid)
        return None if vm is None else vm.node

    def destroy_outside(self, name: str) -> None:
        """The VM is destroyed behind Terraform's back (as rebuild-node's own step does)."""
        node, vmid = NODES[name]
        StubProxmox(self.tf_config()["provider"]).destroy(node, vmid)

    def commands(self) -> list[str]:
        """The plan and apply runs drbot made (init left out)."""
        if not self.log.exists():
            return []
        argvs = [json.loads(line)["argv"] for line in self.log.read_text().splitlines()]
        return [argv[0] for argv in argvs if argv[0] != "init"]


@pytest.fixture
def tflab(tmp_path: Path, pve: PveLab, fakepve_cafile: str) -> TfLab:  # noqa: F811
    root = tmp_path / "tf"
    root.mkdir()
    token = tmp_path / "pve-token"
    token.write_text(TOKEN_SECRET)
    (root / CONFIG).write_text(json.dumps({
        "provider": {"endpoint": pve.server.url, "api_token_id": f"{TOKEN_USER}!{TOKEN_NAME}",
                     "api_token_file": str(token), "ca_file": fakepve_cafile},
        "vms": {name: {"node_name": node, "vm_id": vmid, "memory": 2048, "cores": 2,
                       "disk_gb": 8} for name, (node, vmid) in NODES.items()},
    }))
    binary = tmp_path / "bin" / "terraform"
    launcher.write(binary)
    log = tmp_path / "calls.jsonl"
    config = TerraformConfig(str(root), binary=str(binary), allow_local_state=True,
                             env={Knob.LOG: str(log)})
    lab = TfLab(root, config, pve.server, log)
    subprocess.run([str(binary), "init"], cwd=root, check=True, capture_output=True)
    done = subprocess.run([str(binary), "apply", "-auto-approve", "-json"], cwd=root,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
    assert lab.where(101) == "pve1" and lab.where(102) == "pve1"
    return lab


def inventory(tmp_path: Path) -> Inventory:
    return Inventory.model_validate({
        "nodes": {name: {"host": node, "vmid": vmid, "role": "agent" if name == "n2" else
                         "server", "cluster_init": name == "n1", "terraform_address": ADDR[name],
                         "ansible_host": f"k3s-{name}"} for name, (node, vmid) in NODES.items()},
        "iac": {"terraform": {"dir": str(tmp_path / "tf"), "allow_local_state": True},
                "ansible": {"dir": str(tmp_path / "ansible"), "inventory": "hosts.yml"}},
    })


@dataclass
class Services:
    inventory: Inventory
    terraform: TerraformConfig


@dataclass
class Job:
    """A step's view of its job record: what ``intent`` wrote into it, in order."""

    recorded: dict[str, Any] = field(default_factory=dict)
    journal: list[tuple[str, Any]] = field(default_factory=list)
    rec: Recorder = field(default_factory=Recorder)

    def step(self, tmp_path: Path, tflab: TfLab, name: str = "terraform apply") -> StepContext:
        inv = inventory(tmp_path)
        return StepContext(job_id="j42", step=name, results={}, hooks=self.rec.hooks,
                           services=Services(inv, tflab.config), inventory=inv,
                           recorded=dict(self.recorded),
                           record=lambda key, value: self.journal.append((key, value)))


def plan_files(tmp_path: Path) -> list[Path]:
    return list(tmp_path.rglob("*.tfplan"))


# -- rebuild-node / rebuild-host -----------------------------------------------------------------


def test_a_destroyed_vm_is_created_from_the_checked_plan(tmp_path: Path, tflab: TfLab) -> None:
    tflab.destroy_outside("n2")
    job = Job()
    result = iac.terraform_apply(job.step(tmp_path, tflab), [ADDR["n2"]])
    assert tflab.where(102) == "pve1"
    assert result["added"] == 1 and result["destroyed"] == 0
    assert result["resources"] == [ADDR["n2"]] and result["earlier_attempt"] is False
    assert tflab.commands() == ["plan", "apply"]
    assert job.journal == [("apply", {"targets": [ADDR["n2"]]})]
    assert plan_files(tmp_path) == []  # the plan file does not outlive the step


def test_a_replace_nobody_asked_for_is_refused_and_nothing_is_applied(
        tmp_path: Path, tflab: TfLab) -> None:
    """n2 is configured on pve2 but runs on pve1: the provider would re-create it there."""
    tflab.configure("n2", node_name="pve2")
    before = tflab.state()
    job = Job()
    with pytest.raises(Refused) as refused:
        iac.terraform_apply(job.step(tmp_path, tflab), [ADDR["n2"]])
    assert str(refused.value) == (
        f"terraform would replace {ADDR['n2']} (cannot_update); drbot applies only creations of "
        "the inventory's addresses here, so nothing was applied. Run `terraform plan` yourself, "
        "fix the drift, then /dr retry j42")
    assert tflab.where(102) == "pve1"  # the running VM is untouched
    assert tflab.state() == before
    assert tflab.commands() == ["plan"]
    assert plan_files(tmp_path) == []


def test_a_retry_after_the_apply_went_through_finds_nothing_to_do(
        tmp_path: Path, tflab: TfLab) -> None:
    """The worker died after Terraform created the VM: the retry plans again (never an earlier
    attempt's file), finds nothing to do, applies nothing and still succeeds."""
    tflab.destroy_outside("n1")
    iac.terraform_apply(Job().step(tmp_path, tflab), [ADDR["n1"]])
    before = tflab.state()
    tflab.log.unlink()
    retry = Job(recorded={"apply": {"targets": [ADDR["n1"]]}})
    result = iac.terraform_apply(retry.step(tmp_path, tflab), [ADDR["n1"]])
    assert result["added"] == 0 and result["earlier_attempt"] is True
    assert iac.counted(result, "added") == "added by an earlier attempt of this job"
    assert tflab.commands() == ["plan"]
    assert tflab.state() == before and tflab.where(101) == "pve1"
    assert retry.journal == []


def test_a_stale_saved_plan_is_refused_by_terraform(tmp_path: Path, tflab: TfLab) -> None:
    """Someone's apply lands between drbot's plan and its apply: Terraform refuses the saved
    plan, so what drbot checked is never applied to a state it did not see."""
    tflab.destroy_outside("n1")
    tflab.destroy_outside("n2")
    plan_file = str(tmp_path / "checked.tfplan")
    planned = terraform.plan(tflab.config, targets=[ADDR["n1"]], out=plan_file, hooks=Hooks())
    assert [c.action for c in planned.changes] == ["create"]
    unchecked_apply(tflab.config, targets=[ADDR["n2"]], hooks=Hooks())  # someone else's run
    before = tflab.state()
    with pytest.raises(Conflict, match="refused the plan drbot checked: the state changed"):
        terraform.apply_plan(tflab.config, plan_file, hooks=Hooks())
    assert tflab.where(101) is None and tflab.state() == before


def test_a_saved_plan_takes_no_planning_options(tmp_path: Path, tflab: TfLab) -> None:
    plan_file = str(tmp_path / "checked.tfplan")
    terraform.plan(tflab.config, targets=[ADDR["n1"]], out=plan_file, hooks=Hooks())
    done = subprocess.run([tflab.config.binary, "apply", "-json", f"-target={ADDR['n1']}",
                           plan_file], cwd=tflab.root, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1
    errors = [json.loads(line)["diagnostic"] for line in done.stdout.splitlines()
              if '"diagnostic"' in line]
    assert errors[0]["summary"] == "Invalid options with a saved plan"
    assert f"-target={ADDR['n1']}" in errors[0]["detail"]


# -- rebuild-cluster phase 1 ----------------------------------------------------------------------


def test_phase_one_destroys_then_creates_every_vm_from_checked_plans(
        tmp_path: Path, tflab: TfLab) -> None:
    gone = rebuild_cluster.terraform(Job().step(tmp_path, tflab, rebuild_cluster.DESTROY), True)
    assert gone["destroyed"] == 2 and tflab.where(101) is None and tflab.where(102) is None
    made = rebuild_cluster.terraform(Job().step(tmp_path, tflab, rebuild_cluster.APPLY), False)
    assert made["added"] == 2 and tflab.where(101) == "pve1" and tflab.where(102) == "pve1"
    assert tflab.commands() == ["plan", "apply", "plan", "apply"]


def test_phase_one_refuses_a_delete_while_creating(tmp_path: Path, tflab: TfLab) -> None:
    tflab.destroy_outside("n1")
    tflab.configure("n2", node_name="pve2")
    before = tflab.state()
    with pytest.raises(Refused) as refused:
        rebuild_cluster.terraform(Job().step(tmp_path, tflab, rebuild_cluster.APPLY), False)
    assert str(refused.value).startswith(
        f"terraform would replace {ADDR['n2']} (cannot_update); drbot applies only creations")
    assert tflab.where(101) is None and tflab.where(102) == "pve1"
    assert tflab.state() == before and tflab.commands() == ["plan"]


def test_phase_one_refuses_a_create_while_destroying(tmp_path: Path, tflab: TfLab) -> None:
    """A destroy plan holding a creation (a Terraform that plans one, scripted here: the lab's
    own plans only ever delete with -destroy) is refused before anything is destroyed."""
    stream = tmp_path / "plan.jsonl"
    stream.write_text("\n".join(json.dumps(e) for e in [
        {"type": "planned_change", "change": {"resource": {"addr": ADDR["n1"]},
                                              "action": "delete"}},
        {"type": "planned_change", "change": {"resource": {"addr": ADDR["n2"]},
                                              "action": "create"}},
        {"type": "change_summary", "changes": {"add": 1, "change": 0, "remove": 1,
                                               "operation": "plan"}}]) + "\n")
    tflab.config.env[Knob.LINES] = str(stream)
    with pytest.raises(Refused) as refused:
        rebuild_cluster.terraform(Job().step(tmp_path, tflab, rebuild_cluster.DESTROY), True)
    assert str(refused.value).startswith(
        f"terraform would create {ADDR['n2']}; drbot applies only deletions")
    assert tflab.commands() == ["plan"]
    assert tflab.where(101) == "pve1" and tflab.where(102) == "pve1"
    assert not os.listdir(tmp_path / "ansible" / "artifacts" / "drbot-j42")


def test_a_target_covers_its_instances_and_a_module_what_it_holds() -> None:
    from adapters.terraform_plan import describe, in_scope
    from adapters.terraform_stream import PlannedChange

    assert in_scope('proxmox_vm_qemu.k3s["n2"]', ["proxmox_vm_qemu.k3s"])
    assert in_scope("module.vms.proxmox_vm_qemu.a", ["module.vms"])
    assert in_scope("proxmox_vm_qemu.k3s", ["proxmox_vm_qemu.k3s"])
    assert not in_scope("proxmox_vm_qemu.k3s2", ["proxmox_vm_qemu.k3s"])
    assert not in_scope("module.vmsx.proxmox_vm_qemu.a", ["module.vms"])
    assert describe([PlannedChange("a", "replace", "cannot_update"),
                     PlannedChange("b", "delete")]) == "replace a (cannot_update), delete b"

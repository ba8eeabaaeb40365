"""`drbot inventory import` against the lab: the Terraform state (through `terraform show -json`
of the lab's terraform, in Terraform's format), the real `ansible-inventory --list` and the live
Node roles give back the lab's own hosts and nodes; what they cannot tell (the SSH endpoints of an
inventory whose connection is local) is printed as undecided; --diff shows a drifted entry."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab import Lab, world

SSH_KEYS = ("ssh_address", "ssh_port")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("import") / "lab", time_scale=0.1) as running:
        yield running


def drbot(lab: Lab, *args: str, inventory: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **lab.env, "DRBOT_LOG_JSON": "false"}
    if inventory:
        env["DRBOT_INVENTORY"] = str(inventory)
    return subprocess.run([sys.executable, "-m", "bot.cli", "inventory", "import", *args],
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def test_import_gives_back_the_lab_inventory(lab: Lab) -> None:
    done = drbot(lab)
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

"""The state file the lab's terraform keeps: Terraform's version 4 format, one managed resource
(the VMs, keyed by name) of the bpg/proxmox provider, written whole and renamed into place with
the previous one kept as `.backup`, as Terraform's local backend does.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from lab.terraform_stub.ui import RESOURCE_NAME, RESOURCE_TYPE, VERSION

STATE = "terraform.tfstate"
PROVIDER = 'provider["registry.terraform.io/bpg/proxmox"]'


def load_state(root: Path) -> dict[str, Any]:
    path = root / STATE
    if not path.exists():
        return {
            "version": 4,
            "terraform_version": VERSION,
            "serial": 0,
            "lineage": str(uuid.uuid4()),
            "outputs": {},
            "resources": [],
            "check_results": None,
        }
    return json.loads(path.read_text())


def state_instances(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for res in state.get("resources", []):
        if res.get("type") == RESOURCE_TYPE and res.get("name") == RESOURCE_NAME:
            return {inst["index_key"]: inst["attributes"] for inst in res.get("instances", [])}
    return {}


def save_state(root: Path, state: dict[str, Any], instances: dict[str, dict[str, Any]]) -> None:
    state["serial"] = int(state.get("serial", 0)) + 1
    state["terraform_version"] = VERSION
    state["resources"] = (
        []
        if not instances
        else [
            {
                "mode": "managed",
                "type": RESOURCE_TYPE,
                "name": RESOURCE_NAME,
                "provider": PROVIDER,
                "instances": [
                    {
                        "index_key": key,
                        "schema_version": 0,
                        "attributes": attrs,
                        "sensitive_attributes": [],
                    }
                    for key, attrs in sorted(instances.items())
                ],
            }
        ]
    )
    tmp = root / (STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    if (root / STATE).exists():
        (root / (STATE + ".backup")).write_text((root / STATE).read_text())
    tmp.replace(root / STATE)

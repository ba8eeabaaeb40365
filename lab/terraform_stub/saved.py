"""Saved plans of the lab's terraform (`plan -out=FILE`, `apply FILE`).

The file is the lab's own JSON, not Terraform's zip, holding what a real plan file holds for
this configuration (hashicorp/terraform internal/plans/planfile): the configuration it was made
from, the prior state's lineage and serial with the refreshed instances, and the changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lab.terraform_stub.state import STATE
from lab.terraform_stub.ui import Failed

FORMAT = "lab-terraform-plan/1"


def save_plan(root: Path, out: str, cfg: dict[str, Any], state: dict[str, Any],
              prior: dict[str, dict[str, Any]], changes: list[tuple[str, str, str]],
              targeted: bool) -> None:
    """Write the plan file (mode 0600: a real one holds the variables' values)."""
    state_exists = (root / STATE).exists()
    plan = {
        "format": FORMAT,
        "config": cfg,
        # A plan made before any state exists has an empty lineage and serial 0, as Terraform's
        # (backend_local.go compares only the serial for such a "first plan").
        "lineage": state.get("lineage", "") if state_exists else "",
        "serial": int(state.get("serial", 0)) if state_exists else 0,
        "prior": prior,
        "changes": [list(c) for c in changes],
        "targeted": targeted,
    }
    path = root / out
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(plan, f)


def load_plan(root: Path, name: str) -> dict[str, Any]:
    """The saved plan, or Terraform's error for a file that is none (internal/command/apply.go
    `LoadPlanFile`)."""
    try:
        plan = json.loads((root / name).read_text())
        if not isinstance(plan, dict) or plan.get("format") != FORMAT:
            raise ValueError("not a plan file")
    except (OSError, ValueError) as exc:
        raise Failed(f'Failed to load "{name}" as a plan file', f"Error: {exc}") from None
    return plan


def check_not_stale(plan: dict[str, Any], state: dict[str, Any], state_exists: bool) -> None:
    """Refuse a plan made from another state, in Terraform's words (hashicorp/terraform
    internal/backend/local/backend_local.go `localRunForPlanFile`)."""
    lineage = state.get("lineage", "") if state_exists else ""
    serial = int(state.get("serial", 0)) if state_exists else 0
    first = plan["lineage"] == "" and plan["serial"] == 0
    if not first and plan["lineage"] != lineage:
        raise Failed("Saved plan does not match the given state",
                     "The given plan file can not be applied because it was created from a "
                     "different state lineage.")
    if plan["serial"] != serial:
        raise Failed("Saved plan is stale",
                     "The given plan file can no longer be applied because the state was "
                     "changed by another operation after the plan was created.")

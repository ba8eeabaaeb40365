"""Plan and apply of the configuration's VMs against the lab's Proxmox: refresh (a VM gone is
drift), the planned changes (`-target`, `-replace`, `-destroy`), and applying them one VM at a
time with the state saved after each, as Terraform does.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from lab.terraform_stub.args import Args
from lab.terraform_stub.lock import acquire, release
from lab.terraform_stub.proxmox import Proxmox, rotate_host_key
from lab.terraform_stub.state import load_state, save_state, state_instances
from lab.terraform_stub.ui import RESOURCE_NAME, RESOURCE_TYPE, Failed, Ui, address, resource_info

CONFIG = "lab.tf.json"


def in_scope(key: str, targets: list[str]) -> bool:
    if not targets:
        return True
    base = f"{RESOURCE_TYPE}.{RESOURCE_NAME}"
    return any(t in (base, address(key)) for t in targets)


def refresh(
    ui: Ui, pve: Proxmox, instances: dict[str, dict[str, Any]], targets: list[str]
) -> dict[str, dict[str, Any]]:
    """Read every instance in scope; drop those whose VM no longer exists (drift)."""
    current = dict(instances)
    for key, attrs in instances.items():
        if not in_scope(key, targets):
            continue
        hook = {"resource": resource_info(key), "id_key": "id", "id_value": attrs["id"]}
        ui.emit(
            "refresh_start", f"{address(key)}: Refreshing state... [id={attrs['id']}]", hook=hook
        )
        found = pve.status(attrs["node_name"], int(attrs["vm_id"]))
        ui.emit(
            "refresh_complete", f"{address(key)}: Refresh complete [id={attrs['id']}]", hook=hook
        )
        if found is None:
            del current[key]
            ui.emit(
                "resource_drift",
                f"{address(key)}: Drift detected (delete)",
                change={"resource": resource_info(key), "action": "delete"},
            )
    return current


def plan(
    ui: Ui, cfg: dict[str, Any], instances: dict[str, dict[str, Any]], args: Args
) -> list[tuple[str, str]]:
    changes: list[tuple[str, str]] = []
    known = {address(k) for k in cfg["vms"]}
    for addr in args.replace:
        if addr not in known:
            ui.diagnostic(
                "warning",
                "Replace target not found",
                f"The -replace address {addr} did not match any resource instance "
                "in the configuration.",
            )
    for key in sorted(cfg["vms"]):
        if not in_scope(key, args.targets):
            continue
        exists = key in instances
        if args.destroy:
            action = "delete" if exists else ""
        elif address(key) in args.replace:
            action = "replace" if exists else "create"
        else:
            action = "" if exists else "create"
        if not action:
            continue
        change: dict[str, Any] = {"resource": resource_info(key), "action": action}
        if action == "replace":
            change["reason"] = "requested"
        verb = {"create": "create", "delete": "delete", "replace": "replace"}[action]
        ui.emit("planned_change", f"{address(key)}: Plan to {verb}", change=change)
        changes.append((key, action))
    add = sum(1 for _, a in changes if a in ("create", "replace"))
    remove = sum(1 for _, a in changes if a in ("delete", "replace"))
    summary = (
        f"Plan: {add} to add, 0 to change, {remove} to destroy."
        if changes
        else "No changes. Your infrastructure matches the configuration."
    )
    ui.emit(
        "change_summary",
        summary,
        changes={"add": add, "change": 0, "import": 0, "remove": remove, "operation": "plan"},
    )
    return changes


def apply_changes(
    ui: Ui,
    pve: Proxmox,
    cfg: dict[str, Any],
    root: Path,
    state: dict[str, Any],
    instances: dict[str, dict[str, Any]],
    changes: list[tuple[str, str]],
    targeted: bool,
) -> None:
    added = removed = 0
    for key, action in changes:
        vm = dict(cfg["vms"][key], name=key)
        if action in ("delete", "replace"):
            attrs = instances[key]
            hook = {
                "resource": resource_info(key),
                "action": "delete",
                "id_key": "id",
                "id_value": attrs["id"],
            }
            ui.emit("apply_start", f"{address(key)}: Destroying... [id={attrs['id']}]", hook=hook)
            started = time.monotonic()
            run_step(
                ui, key, "delete", lambda vm=vm: pve.destroy(vm["node_name"], int(vm["vm_id"]))
            )
            del instances[key]
            removed += 1
            save_state(root, state, instances)
            elapsed = int(time.monotonic() - started)
            ui.emit(
                "apply_complete",
                f"{address(key)}: Destruction complete after {elapsed}s",
                hook={
                    "resource": resource_info(key),
                    "action": "delete",
                    "elapsed_seconds": elapsed,
                },
            )
        if action in ("create", "replace"):
            ui.emit(
                "apply_start",
                f"{address(key)}: Creating...",
                hook={"resource": resource_info(key), "action": "create"},
            )
            started = time.monotonic()
            smbios = str(uuid.uuid4())
            run_step(ui, key, "create", lambda vm=vm, smbios=smbios: pve.create(vm, smbios))
            rotate_host_key(vm)
            instances[key] = {
                "id": str(vm["vm_id"]),
                "vm_id": vm["vm_id"],
                "name": key,
                "node_name": vm["node_name"],
                "memory": [{"dedicated": vm.get("memory", 4096)}],
                "cpu": [{"cores": vm.get("cores", 2)}],
                "smbios": [{"uuid": smbios}],
                "started": True,
                "tags": ["k3s", "terraform"],
            }
            added += 1
            save_state(root, state, instances)
            elapsed = int(time.monotonic() - started)
            ui.emit(
                "apply_complete",
                f"{address(key)}: Creation complete after {elapsed}s [id={vm['vm_id']}]",
                hook={
                    "resource": resource_info(key),
                    "action": "create",
                    "id_key": "id",
                    "id_value": str(vm["vm_id"]),
                    "elapsed_seconds": elapsed,
                },
            )
    if targeted:
        targeted_warning(ui)
    ui.emit(
        "change_summary",
        f"Apply complete! Resources: {added} added, 0 changed, {removed} destroyed.",
        changes={"add": added, "change": 0, "import": 0, "remove": removed, "operation": "apply"},
    )
    ui.emit("outputs", "Outputs: 0", outputs={})


def targeted_warning(ui: Ui) -> None:
    ui.diagnostic(
        "warning",
        "Applied changes may be incomplete",
        "The plan was created with the -target option in effect, so some "
        "changes requested in the configuration may have been ignored and the "
        "output values may not be fully updated. Run the following command to "
        "verify that no other changes are pending:\n    terraform plan\n\n"
        "Note that the -target option is not suitable for routine use, and is "
        "provided only for exceptional situations such as recovering from "
        "errors or mistakes, or when Terraform specifically suggests to use it "
        "as part of an error message.",
    )


def run_step(ui: Ui, key: str, action: str, fn: Any) -> None:
    try:
        fn()
    except Failed as exc:
        ui.emit(
            "apply_errored",
            f"{address(key)}: {action.capitalize()} errored after 0s",
            level="error",
            hook={"resource": resource_info(key), "action": action, "elapsed_seconds": 0},
        )
        verb = "creating" if action == "create" else "deleting"
        raise Failed(f"error {verb} VM: {exc.summary}", exc.detail, address(key)) from exc


def run_plan_or_apply(ui: Ui, root: Path, args: Args) -> int:
    cfg = json.loads((root / CONFIG).read_text())
    if not (root / ".terraform").is_dir():
        raise Failed(
            "Inconsistent dependency lock file",
            "The following dependency selections recorded in the lock file are "
            "inconsistent with the current configuration:\n  - provider "
            "registry.terraform.io/bpg/proxmox: required by this configuration but no "
            "version is selected\n\nTo make the initial dependency selections that will "
            "initialize the dependency lock file, run:\n  terraform init",
        )
    if args.command == "apply" and not args.auto_approve and (args.json or not sys.stdin.isatty()):
        raise Failed(
            "Plan file or auto-approve required",
            "Terraform cannot ask for interactive approval when -json is set. You can "
            "either apply a saved plan file, or enable the -auto-approve option.",
        )
    operation = "OperationTypeApply" if args.command == "apply" else "OperationTypePlan"
    lock = acquire(root, operation, args.lock_timeout) if args.lock else None
    try:
        pve = Proxmox(cfg["provider"])
        state = load_state(root)
        instances = state_instances(state)
        if args.refresh:
            instances = refresh(ui, pve, instances, args.targets)
        if args.targets:
            ui.diagnostic(
                "warning",
                "Resource targeting is in effect",
                "You are creating a plan with the -target option, which means that "
                "the result of this plan may not represent all of the changes "
                "requested by the current configuration.\n\nThe -target option is not "
                "for routine use, and is provided only for exceptional situations such "
                "as recovering from errors or mistakes, or when Terraform specifically "
                "suggests to use it as part of an error message.",
            )
        changes = plan(ui, cfg, instances, args)
        if args.command == "plan":
            return 2 if (args.detailed and changes) else 0
        apply_changes(ui, pve, cfg, root, state, instances, changes, bool(args.targets))
        return 0
    finally:
        if lock is not None:
            release(root, lock)

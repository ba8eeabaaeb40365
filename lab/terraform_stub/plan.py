"""Plan and apply of the configuration's VMs against the lab's Proxmox: refresh (a VM gone is
drift), the planned changes (`-target`, `-replace`, `-destroy`, and a replacement the provider
forces for a VM whose configured node differs), saved with `-out` and applied from that file
(`saved`), and applying them one VM at a time with the state saved after each, as Terraform does.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from lab.terraform_stub.args import Args, plan_options
from lab.terraform_stub.lock import acquire, release
from lab.terraform_stub.proxmox import Proxmox, rotate_host_key
from lab.terraform_stub.saved import check_not_stale, load_plan, save_plan
from lab.terraform_stub.state import STATE, load_state, save_state, state_instances
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


def planned_action(key: str, cfg: dict[str, Any], instances: dict[str, dict[str, Any]],
                   args: Args) -> tuple[str, str]:
    """(action, reason) for one configured VM; ("", "") when nothing is to be done.

    A VM whose configured `node_name` differs from the one it runs on is replaced (reason
    `cannot_update`, as Terraform reports a change the provider forces a new resource for): the
    bpg/proxmox provider re-creates a VM on a node change unless `migrate = true` is set
    (bpg/terraform-provider-proxmox docs/resources/virtual_environment_vm.md, `migrate`).
    """
    exists = key in instances
    if args.destroy:
        return ("delete", "") if exists else ("", "")
    if not exists:
        return "create", ""
    if address(key) in args.replace:
        return "replace", "requested"
    if cfg["vms"][key]["node_name"] != instances[key]["node_name"] and \
            not cfg["vms"][key].get("migrate"):
        return "replace", "cannot_update"
    return "", ""


def plan(
    ui: Ui, cfg: dict[str, Any], instances: dict[str, dict[str, Any]], args: Args
) -> list[tuple[str, str, str]]:
    """The planned changes as (key, action, reason), each announced as `planned_change`."""
    changes: list[tuple[str, str, str]] = []
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
        action, reason = planned_action(key, cfg, instances, args)
        if action:
            announce(ui, key, action, reason)
            changes.append((key, action, reason))
    add = sum(1 for _, a, _ in changes if a in ("create", "replace"))
    remove = sum(1 for _, a, _ in changes if a in ("delete", "replace"))
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


def announce(ui: Ui, key: str, action: str, reason: str) -> None:
    """One `planned_change` message (hashicorp/terraform internal/command/views/json/change.go:
    "<addr>: Plan to <action>", the reason only when there is one)."""
    change: dict[str, Any] = {"resource": resource_info(key), "action": action}
    if reason:
        change["reason"] = reason
    ui.emit("planned_change", f"{address(key)}: Plan to {action}", change=change)


def apply_changes(
    ui: Ui,
    pve: Proxmox,
    cfg: dict[str, Any],
    root: Path,
    state: dict[str, Any],
    instances: dict[str, dict[str, Any]],
    changes: list[tuple[str, str, str]],
    targeted: bool,
) -> None:
    added = removed = 0
    for key, action, _ in changes:
        vm = dict(cfg["vms"][key], name=key)
        if action in ("delete", "replace"):
            attrs = instances[key]
            old = {"node_name": attrs["node_name"], "vm_id": attrs["vm_id"]}
            hook = {
                "resource": resource_info(key),
                "action": "delete",
                "id_key": "id",
                "id_value": attrs["id"],
            }
            ui.emit("apply_start", f"{address(key)}: Destroying... [id={attrs['id']}]", hook=hook)
            started = time.monotonic()
            run_step(
                ui, key, "delete", lambda old=old: pve.destroy(old["node_name"], int(old["vm_id"]))
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
    if args.command == "apply" and saved_plan(args):
        return apply_saved(ui, root, args)
    if args.command == "apply" and not args.auto_approve and (args.json or not sys.stdin.isatty()):
        # hashicorp/terraform internal/command/arguments/apply.go
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
            if args.out:
                save_plan(root, args.out, cfg, state, instances, changes, bool(args.targets))
            return 2 if (args.detailed and changes) else 0
        apply_changes(ui, pve, cfg, root, state, instances, changes, bool(args.targets))
        return 0
    finally:
        if lock is not None:
            release(root, lock)


def saved_plan(args: Args) -> str:
    """The plan file argument of `apply`, "" when there is none."""
    return next((a for a in args.rest if not a.startswith("-")), "")


def apply_saved(ui: Ui, root: Path, args: Args) -> int:
    """`terraform apply FILE`: exactly the saved plan, against the state it was made from.

    No approval is asked and no planning option is taken with a saved plan
    (developer.hashicorp.com/terraform/cli/commands/apply, "Saved Plan Mode"; the diagnostic's
    wording here is the lab's). The plan's prior state must still be the state: a different
    lineage or serial is refused with Terraform's words (hashicorp/terraform
    internal/backend/local/backend_local.go `localRunForPlanFile`). The changes are announced
    as `planned_change` before they are applied (internal/backend/local/backend_apply.go).
    """
    given = plan_options(args)
    if given:
        raise Failed(
            "Invalid options with a saved plan",
            f"{' '.join(given)}: when using a saved plan, you cannot specify any additional "
            "planning modes or options; they were decided when the plan was created.",
        )
    saved = load_plan(root, saved_plan(args))
    lock = acquire(root, "OperationTypeApply", args.lock_timeout) if args.lock else None
    try:
        state = load_state(root)
        check_not_stale(saved, state, (root / STATE).exists())
        changes = [(key, action, reason) for key, action, reason in saved["changes"]]
        for key, action, reason in changes:
            announce(ui, key, action, reason)
        cfg = saved["config"]
        apply_changes(ui, Proxmox(cfg["provider"]), cfg, root, state, dict(saved["prior"]),
                      changes, saved["targeted"])
        return 0
    finally:
        if lock is not None:
            release(root, lock)

"""A `terraform` executable for the lab: the bpg/proxmox VMs of `lab.tf.json`, built in fakepve.

It speaks Terraform's machine-readable UI (`-json`: one object per line with @level, @message,
@module, @timestamp and type; domain.md §7), keeps a version 4 state file, and takes a state lock
whose info file outlives a killed process, as a remote backend's lock does (a stale lock must be
force-unlocked). Creating a VM gives it a new SMBIOS uuid and its SSH endpoint a new host key.

Commands: version, init, validate -json, plan, apply, destroy, state list, show -json, output -json,
force-unlock.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VERSION = "1.9.5"
UI_VERSION = "1.2"
CONFIG = "lab.tf.json"
STATE = "terraform.tfstate"
LOCK_INFO = ".terraform.tfstate.lock.info"
RESOURCE_TYPE = "proxmox_virtual_environment_vm"
RESOURCE_NAME = "k3s"
PROVIDER = 'provider["registry.terraform.io/bpg/proxmox"]'
LOCK_HELP = (
    "Terraform acquires a state lock to protect the state from being written\n"
    "by multiple users at the same time. Please resolve the issue above and try\n"
    'again. For most commands, you can disable locking with the "-lock=false"\n'
    "flag, but this is not recommended."
)


class Failed(Exception):
    """A Terraform error diagnostic: summary and detail."""

    def __init__(self, summary: str, detail: str = "", address: str | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.detail = detail
        self.address = address


# ------------------------------------------------------------------------------ output


@dataclass
class Ui:
    json: bool
    color: bool = False
    lines: list[str] = field(default_factory=list)

    def emit(self, type_: str, message: str, level: str = "info", **extra: Any) -> None:
        if self.json:
            now = datetime.now().astimezone().isoformat(timespec="microseconds")
            line = {
                "@level": level,
                "@message": message,
                "@module": "terraform.ui",
                "@timestamp": now,
                **extra,
                "type": type_,
            }
            print(json.dumps(line), flush=True)
        elif type_ not in ("version",):
            print(message, flush=True)

    def version(self) -> None:
        self.emit("version", f"Terraform {VERSION}", terraform=VERSION, ui=UI_VERSION)

    def diagnostic(
        self, severity: str, summary: str, detail: str = "", address: str | None = None
    ) -> None:
        diag: dict[str, Any] = {"severity": severity, "summary": summary, "detail": detail}
        if address:
            diag["address"] = address
        level = "error" if severity == "error" else "warn"
        prefix = "Error" if severity == "error" else "Warning"
        if self.json:
            self.emit("diagnostic", f"{prefix}: {summary}", level=level, diagnostic=diag)
        else:
            print(
                f"\n{prefix}: {summary}\n\n{detail}\n",
                file=sys.stderr if severity == "error" else sys.stdout,
                flush=True,
            )


def resource_info(key: str) -> dict[str, Any]:
    addr = address(key)
    return {
        "addr": addr,
        "module": "",
        "resource": addr,
        "implied_provider": "proxmox",
        "resource_type": RESOURCE_TYPE,
        "resource_name": RESOURCE_NAME,
        "resource_key": key,
    }


def address(key: str) -> str:
    return f'{RESOURCE_TYPE}.{RESOURCE_NAME}["{key}"]'


# ------------------------------------------------------------------------------- state


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


def go_time(when: datetime) -> str:
    """Go's time.Time String(), as Terraform prints a lock's Created."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f000 +0000 UTC")


def write_lock(root: Path, operation: str, who: str | None = None) -> dict[str, Any] | None:
    """Create the lock info file atomically; None if another holder has it."""
    info = {
        "ID": str(uuid.uuid4()),
        "Operation": operation,
        "Info": "",
        "Who": who or f"{getpass.getuser()}@{socket.gethostname()}",
        "Version": VERSION,
        "Created": go_time(datetime.now(UTC)),
        "Path": STATE,
    }
    try:
        fd = os.open(root / LOCK_INFO, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w") as out:
        json.dump(info, out)
    return info


def lock_detail(root: Path) -> str:
    try:
        info = json.loads((root / LOCK_INFO).read_text())
    except (OSError, ValueError):
        info = {}
    return (
        "Error message: resource temporarily unavailable\nLock Info:\n"
        f"  ID:        {info.get('ID', '')}\n  Path:      {info.get('Path', STATE)}\n"
        f"  Operation: {info.get('Operation', '')}\n  Who:       {info.get('Who', '')}\n"
        f"  Version:   {info.get('Version', '')}\n  Created:   {info.get('Created', '')}\n"
        f"  Info:      {info.get('Info', '')}\n\n{LOCK_HELP}"
    )


def acquire(root: Path, operation: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = write_lock(root, operation)
        if info is not None:
            return info
        if time.monotonic() >= deadline:
            raise Failed("Error acquiring the state lock", lock_detail(root))
        time.sleep(0.2)


def release(root: Path, info: dict[str, Any]) -> None:
    try:
        held = json.loads((root / LOCK_INFO).read_text())
    except (OSError, ValueError):
        return
    if held.get("ID") == info["ID"]:
        (root / LOCK_INFO).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- provider


class Proxmox:
    """The slice of the Proxmox API the bpg provider uses for a VM."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        import requests

        self.url = cfg["endpoint"].rstrip("/") + "/api2/json"
        token = Path(cfg["api_token_file"]).read_text().strip()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"PVEAPIToken={cfg['api_token_id']}={token}"
        # passed on every request: a session's verify loses to REQUESTS_CA_BUNDLE otherwise
        self.ca_file = cfg["ca_file"]

    def call(self, method: str, path: str, **params: Any) -> Any:
        import requests

        try:
            resp = self.session.request(
                method, self.url + path, data=params or None, timeout=30, verify=self.ca_file
            )
        except requests.RequestException as exc:
            raise Failed(
                "Error communicating with the Proxmox API", f"{method} {path}: {exc}"
            ) from exc
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            reason = resp.reason or ""
            detail = body.get("message") or reason
            if body.get("errors"):
                detail += " " + json.dumps(body["errors"])
            raise Failed(
                f"received an HTTP {resp.status_code} response", f"Reason: {detail}".strip()
            )
        return resp.json().get("data")

    def wait(self, node: str, upid: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.call("GET", f"/nodes/{node}/tasks/{upid}/status")
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus", ""))
                if exit_status != "OK" and not exit_status.startswith("WARNINGS"):
                    raise Failed("task failed", f"task {upid} ended with: {exit_status}")
                return
            if time.monotonic() > deadline:
                raise Failed("timeout while waiting for a Proxmox task", upid)
            time.sleep(0.05)

    def status(self, node: str, vmid: int) -> str | None:
        try:
            return self.call("GET", f"/nodes/{node}/qemu/{vmid}/status/current").get("status")
        except Failed as exc:
            if "does not exist" in exc.detail:
                return None
            raise

    def destroy(self, node: str, vmid: int) -> None:
        if self.status(node, vmid) == "running":
            self.wait(node, self.call("POST", f"/nodes/{node}/qemu/{vmid}/status/stop"))
        upid = self.call(
            "DELETE", f"/nodes/{node}/qemu/{vmid}?purge=1&destroy-unreferenced-disks=1"
        )
        self.wait(node, upid)

    def create(self, vm: dict[str, Any], smbios_uuid: str) -> None:
        node, vmid = vm["node_name"], vm["vm_id"]
        upid = self.call(
            "POST",
            f"/nodes/{node}/qemu",
            vmid=vmid,
            name=vm["name"],
            memory=vm.get("memory", 4096),
            cores=vm.get("cores", 2),
            scsihw="virtio-scsi-single",
            agent=1,
            scsi0=f"local-lvm:{vm.get('disk_gb', 32)}",
            net0="virtio,bridge=vmbr0",
            smbios1=f"uuid={smbios_uuid}",
            tags="k3s;terraform",
        )
        self.wait(node, upid)
        self.wait(node, self.call("POST", f"/nodes/{node}/qemu/{vmid}/status/start"))


def rotate_host_key(vm: dict[str, Any]) -> None:
    """The new VM boots with a new SSH host key (its endpoint picks it up when the VM runs)."""
    from lab.servers import new_host_key

    if vm.get("ssh_host_key"):
        new_host_key(Path(vm["ssh_host_key"]))


# ------------------------------------------------------------------------------- plan


@dataclass
class Args:
    command: str
    targets: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    destroy: bool = False
    json: bool = False
    auto_approve: bool = False
    lock: bool = True
    lock_timeout: float = 0.0
    detailed: bool = False
    refresh: bool = True
    rest: list[str] = field(default_factory=list)


def parse(argv: list[str]) -> tuple[Path, Args]:
    root = Path.cwd()
    while argv and argv[0].startswith("-chdir="):
        root = root / argv.pop(0).split("=", 1)[1]
    if not argv:
        raise Failed("No command", "Usage: terraform [global options] <subcommand> [args]")
    args = Args(command=argv[0])
    for arg in argv[1:]:
        name, _, value = arg.partition("=")
        name = "-" + name.lstrip("-")
        if name == "-target":
            args.targets.append(value)
        elif name == "-replace":
            args.replace.append(value)
        elif name == "-destroy":
            args.destroy = True
        elif name == "-json":
            args.json = True
        elif name == "-auto-approve":
            args.auto_approve = True
        elif name == "-lock":
            args.lock = value != "false"
        elif name == "-lock-timeout":
            args.lock_timeout = duration(value)
        elif name == "-detailed-exitcode":
            args.detailed = True
        elif name == "-refresh":
            args.refresh = value != "false"
        elif name in (
            "-input",
            "-no-color",
            "-compact-warnings",
            "-parallelism",
            "-force",
            "-upgrade",
            "-reconfigure",
            "-backend-config",
            "-out",
        ):
            continue
        else:
            args.rest.append(arg)
    if args.command == "destroy":
        args.command, args.destroy = "apply", True
    return root, args


def duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text or 0)


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


# ------------------------------------------------------------------------------- main


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


def force_unlock(ui: Ui, root: Path, args: Args) -> int:
    wanted = args.rest[0] if args.rest else ""
    try:
        held = json.loads((root / LOCK_INFO).read_text())
    except (OSError, ValueError):
        raise Failed("Failed to unlock state", "LocalState not locked") from None
    if held.get("ID") != wanted:
        raise Failed(
            "Failed to unlock state",
            f"lock id {wanted!r} does not match existing lock ({held.get('ID')})",
        )
    (root / LOCK_INFO).unlink()
    print(
        "Terraform state has been successfully unlocked!\n\nThe state has been unlocked, and "
        "Terraform commands should now be able to\nobtain a new lock on the remote state.",
        flush=True,
    )
    return 0


def validate(root: Path) -> int:
    """`terraform validate -json`: the configuration only, never the state (Terraform's
    internal/command/views/validate.go: format_version, valid, error_count, warning_count,
    diagnostics; exit status 1 when invalid)."""
    diagnostics = []
    try:
        config = json.loads((root / CONFIG).read_text())
        if not isinstance(config.get("vms"), dict):
            raise ValueError('"vms" must be an object')
    except (OSError, ValueError) as exc:
        diagnostics.append({"severity": "error", "summary": "Invalid configuration",
                            "detail": f"{CONFIG}: {exc}"})
    print(json.dumps({"format_version": "1.0", "valid": not diagnostics,
                      "error_count": len(diagnostics), "warning_count": 0,
                      "diagnostics": diagnostics}))
    return 1 if diagnostics else 0


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _interrupted)
    ui = Ui(json="-json" in argv)
    try:
        root, args = parse(argv)
        if args.command == "version":
            if args.json:
                print(
                    json.dumps(
                        {
                            "terraform_version": VERSION,
                            "platform": "linux_amd64",
                            "provider_selections": {"registry.terraform.io/bpg/proxmox": "0.66.1"},
                            "terraform_outdated": False,
                        },
                        indent=2,
                    )
                )
            else:
                print(f"Terraform v{VERSION}\non linux_amd64")
            return 0
        if args.command in ("plan", "apply"):
            ui.version()
            return run_plan_or_apply(ui, root, args)
        if args.command == "init":
            (root / ".terraform").mkdir(exist_ok=True)
            ui.emit("log", "Terraform has been successfully initialized!")
            return 0
        if args.command == "force-unlock":
            return force_unlock(ui, root, args)
        if args.command == "validate":
            return validate(root)
        if args.command == "state" and args.rest[:1] == ["list"]:
            for key in sorted(state_instances(load_state(root))):
                print(address(key))
            return 0
        if args.command == "output":
            print("{}")
            return 0
        if args.command == "show":
            print(
                json.dumps(
                    {
                        "format_version": "1.0",
                        "terraform_version": VERSION,
                        "values": {
                            "root_module": {
                                "resources": [
                                    {
                                        "address": address(k),
                                        "mode": "managed",
                                        "type": RESOURCE_TYPE,
                                        "name": RESOURCE_NAME,
                                        "index": k,
                                        "values": v,
                                    }
                                    for k, v in sorted(state_instances(load_state(root)).items())
                                ]
                            }
                        },
                    }
                )
            )
            return 0
        raise Failed(
            f"Unsupported command {args.command!r}",
            "this lab terraform knows version, init, validate, plan, apply, destroy, state "
            "list, show, output and force-unlock",
        )
    except Failed as exc:
        ui.diagnostic("error", exc.summary, exc.detail, exc.address)
        return 1
    except KeyboardInterrupt:
        ui.diagnostic("error", "Operation cancelled", "Interrupt received.")
        return 1


if __name__ == "__main__":
    sys.exit(main())

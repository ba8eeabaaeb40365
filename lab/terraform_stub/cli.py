"""The lab's `terraform` executable: each subcommand's answer (version, init, validate -json,
plan, apply, destroy, state list, show -json, output -json, force-unlock); an error is a
diagnostic and exit status 1, SIGTERM and SIGINT "Operation cancelled". A unit test may
record the calls and script plan/apply through the knobs of `scripted`.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from lab.terraform_stub import scripted
from lab.terraform_stub.args import parse
from lab.terraform_stub.lock import force_unlock
from lab.terraform_stub.plan import CONFIG, run_plan_or_apply
from lab.terraform_stub.state import load_state, state_instances
from lab.terraform_stub.ui import RESOURCE_NAME, RESOURCE_TYPE, VERSION, Failed, Ui, address


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
    scripted.record(argv)
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
            status = scripted.answer(ui, args)
            if status is not None:
                return status
            ui.version()
            return run_plan_or_apply(ui, root, args)
        if args.command == "init":
            (root / ".terraform").mkdir(exist_ok=True)
            ui.emit("log", "Terraform has been successfully initialized!")
            return 0
        if args.command == "force-unlock":
            return force_unlock(root, args.rest[0] if args.rest else "")
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

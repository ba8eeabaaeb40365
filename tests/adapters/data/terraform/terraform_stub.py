#!/usr/bin/env python3
"""A stand-in ``terraform`` for tests: records its argv and prints ``-json`` UI lines.

Environment:
  TF_STUB_LOG    append one JSON object per call: argv, cwd, the TF_* variables it saw and the
                 names of all the variables it saw
  TF_STUB_LINES  a file whose lines are printed instead of the generated plan/apply stream
  TF_STUB_EXIT   exit code for plan/apply (default 0)
  TF_STUB_BLOCK  "ignore-int": plan/apply print a version line, ignore SIGINT and block until
                 another signal ends them (a Terraform that will not stop gracefully)

Without TF_STUB_LINES, ``plan``/``apply`` print a plausible stream built from the arguments:
``-replace=A`` plans a replace (reason ``requested``), ``-target=A`` a create (a delete with
``-destroy``).
"""

import json
import os
import signal
import sys

VERSION = {
    "@level": "info",
    "@message": "Terraform 1.0.3",
    "@module": "terraform.ui",
    "terraform": "1.0.3",
    "type": "version",
    "ui": "0.1.0",
}


def emit(obj: dict) -> None:
    obj.setdefault("@level", "info")
    obj.setdefault("@module", "terraform.ui")
    obj.setdefault("@timestamp", "2024-01-01T00:00:00.000000Z")
    print(json.dumps(obj), flush=True)


def resource(addr: str) -> dict:
    rtype, _, name = addr.partition(".")
    return {
        "addr": addr,
        "module": "",
        "resource": addr,
        "implied_provider": "stub",
        "resource_type": rtype,
        "resource_name": name,
    }


def planned(args: list[str], destroy: bool) -> list[tuple[str, str, str]]:
    out = [(a[9:], "replace", "requested") for a in args if a.startswith("-replace=")]
    for arg in args:
        if arg.startswith("-target=") and arg[8:] not in [a for a, _, _ in out]:
            out.append((arg[8:], "delete" if destroy else "create", ""))
    return out


def generated(command: str, args: list[str]) -> None:
    destroy = "-destroy" in args
    changes = planned(args, destroy)
    emit(dict(VERSION))
    for addr, action, reason in changes:
        change = {"resource": resource(addr), "action": action}
        if reason:
            change["reason"] = reason
        emit({"@message": f"{addr}: Plan to {action}", "type": "planned_change", "change": change})
    add = sum(a in ("create", "replace") for _, a, _ in changes)
    remove = sum(a in ("delete", "replace") for _, a, _ in changes)
    counts = {"add": add, "change": 0, "remove": remove}
    emit(
        {
            "@message": "Plan: ...",
            "type": "change_summary",
            "changes": {**counts, "operation": "plan"},
        }
    )
    if command != "apply":
        return
    for addr, action, _ in changes:
        hook = {"resource": resource(addr), "action": action}
        emit({"@message": f"{addr}: Creating...", "type": "apply_start", "hook": hook})
        emit(
            {
                "@message": f"{addr}: Still creating...",
                "type": "apply_progress",
                "hook": {**hook, "elapsed_seconds": 10},
            }
        )
        emit(
            {
                "@message": f"{addr}: Creation complete",
                "type": "apply_complete",
                "hook": {**hook, "id_key": "id", "id_value": "104", "elapsed_seconds": 12},
            }
        )
    emit(
        {
            "@message": "Apply complete!",
            "type": "change_summary",
            "changes": {**counts, "operation": "apply"},
        }
    )
    emit(
        {
            "@message": "Outputs: 2",
            "type": "outputs",
            "outputs": {
                "ip": {"sensitive": False, "type": "string", "value": "10.0.0.13"},
                "token": {"sensitive": True, "type": "string", "value": "stub-sensitive-value"},
            },
        }
    )


def main() -> int:
    args = sys.argv[1:]
    log = os.environ.get("TF_STUB_LOG")
    if log:
        seen = {
            k: v
            for k, v in os.environ.items()
            if k.startswith("TF_") and not k.startswith("TF_STUB")
        }
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"argv": args, "cwd": os.getcwd(), "env": seen,
                                "names": sorted(os.environ)}) + "\n")
    command = args[0] if args else ""
    if command == "init":
        print("Terraform has been successfully initialized!", flush=True)
        return 0
    if command == "version":
        print("Terraform v1.0.3", flush=True)
        return 0
    if command in ("plan", "apply") and os.environ.get("TF_STUB_BLOCK") == "ignore-int":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        emit(dict(VERSION))
        while True:
            signal.pause()
    if command in ("plan", "apply"):
        lines = os.environ.get("TF_STUB_LINES")
        if lines:
            with open(lines, encoding="utf-8") as f:
                sys.stdout.write(f.read())
            sys.stdout.flush()
        else:
            generated(command, args)
        return int(os.environ.get("TF_STUB_EXIT", "0"))
    if command == "force-unlock":
        print("Terraform state has been successfully unlocked!", flush=True)
        return 0
    print(f"Error: stub terraform does not know {command!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""Scripted runs of the lab's terraform, for the Terraform adapter's unit tests: each call's
argv, working directory and environment are recorded, and plan/apply answer with a stream the
test chose instead of planning the lab's VMs against fakepve. The knobs are environment
variables (TF_* names, so drbot's adapter passes them on as it passes Terraform's own):

  TF_STUB_LOG    append one JSON object per call: argv, cwd, the TF_* variables it saw (the
                 knobs left out) and the names of all the variables it saw
  TF_STUB_PLAN   "arguments": plan/apply print a plausible stream built from the arguments
                 alone, with no configuration, state or Proxmox: `-replace=A` plans a replace
                 (reason "requested"), `-target=A` a create (a delete with `-destroy`); apply
                 then reports each as started, in progress and complete (a replace in one
                 event, where Terraform reports a delete and a create) and outputs one plain and
                 one sensitive value
  TF_STUB_LINES  a file whose lines plan/apply print as they are
  TF_STUB_EXIT   the exit status of a scripted plan/apply (default 0)
  TF_STUB_BLOCK  "ignore-int": plan/apply print the version line, ignore SIGINT and block until
                 another signal ends them (a Terraform that will not stop gracefully)

Without any of them the lab's terraform behaves as the lab needs (see `cli`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from enum import StrEnum
from typing import Any

from lab.terraform_stub.args import Args
from lab.terraform_stub.ui import Ui


class Knob(StrEnum):
    """The environment variables a unit test sets to script the lab's terraform."""

    LOG = "TF_STUB_LOG"
    PLAN = "TF_STUB_PLAN"
    LINES = "TF_STUB_LINES"
    EXIT = "TF_STUB_EXIT"
    BLOCK = "TF_STUB_BLOCK"


FROM_ARGUMENTS = "arguments"
IGNORE_INT = "ignore-int"
SENSITIVE_OUTPUT = "stub-sensitive-value"


def record(argv: list[str]) -> None:
    """Append this call to the TF_STUB_LOG file, if one is set."""
    log = os.environ.get(Knob.LOG)
    if not log:
        return
    seen = {k: v for k, v in os.environ.items() if k.startswith("TF_") and k not in set(Knob)}
    call = {"argv": argv, "cwd": os.getcwd(), "env": seen, "names": sorted(os.environ)}
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps(call) + "\n")


def answer(ui: Ui, args: Args) -> int | None:
    """The scripted answer to plan/apply and its exit status; None when no knob scripts it."""
    if os.environ.get(Knob.BLOCK) == IGNORE_INT:
        block_ignoring_sigint(ui)
    lines = os.environ.get(Knob.LINES)
    if lines:
        with open(lines, encoding="utf-8") as f:
            sys.stdout.write(f.read())
        sys.stdout.flush()
    elif os.environ.get(Knob.PLAN) == FROM_ARGUMENTS:
        ui.version()
        from_arguments(ui, args)
    else:
        return None
    return int(os.environ.get(Knob.EXIT, "0"))


def block_ignoring_sigint(ui: Ui) -> None:
    """Never returns: only a signal other than SIGINT ends the process (SIGTERM reaches the
    CLI's handler, which stops it as "Operation cancelled")."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ui.version()
    while True:
        signal.pause()


def resource(addr: str) -> dict[str, Any]:
    rtype, _, name = addr.partition(".")
    return {
        "addr": addr,
        "module": "",
        "resource": addr,
        "implied_provider": "stub",
        "resource_type": rtype,
        "resource_name": name,
    }


def planned(args: Args) -> list[tuple[str, str, str]]:
    """(address, action, reason): each -replace first, then each other -target."""
    out = [(addr, "replace", "requested") for addr in args.replace]
    for addr in args.targets:
        if addr not in args.replace:
            out.append((addr, "delete" if args.destroy else "create", ""))
    return out


def from_arguments(ui: Ui, args: Args) -> None:
    changes = planned(args)
    for addr, action, reason in changes:
        change = {"resource": resource(addr), "action": action}
        if reason:
            change["reason"] = reason
        ui.emit("planned_change", f"{addr}: Plan to {action}", change=change)
    add = sum(a in ("create", "replace") for _, a, _ in changes)
    remove = sum(a in ("delete", "replace") for _, a, _ in changes)
    counts = {"add": add, "change": 0, "import": 0, "remove": remove}
    ui.emit("change_summary", f"Plan: {add} to add, 0 to change, {remove} to destroy.",
            changes={**counts, "operation": "plan"})
    if args.command != "apply":
        return
    for addr, action, _ in changes:
        hook = {"resource": resource(addr), "action": action}
        ui.emit("apply_start", f"{addr}: Creating...", hook=hook)
        ui.emit("apply_progress", f"{addr}: Still creating... [10s elapsed]",
                hook={**hook, "elapsed_seconds": 10})
        ui.emit("apply_complete", f"{addr}: Creation complete after 12s [id=104]",
                hook={**hook, "id_key": "id", "id_value": "104", "elapsed_seconds": 12})
    ui.emit("change_summary",
            f"Apply complete! Resources: {add} added, 0 changed, {remove} destroyed.",
            changes={**counts, "operation": "apply"})
    ui.emit("outputs", "Outputs: 2", outputs={
        "ip": {"sensitive": False, "type": "string", "value": "10.0.0.13"},
        "token": {"sensitive": True, "type": "string", "value": SENSITIVE_OUTPUT},
    })

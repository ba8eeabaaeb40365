"""Terraform's read-only commands: ``validate -json``, ``state list``, ``show -json`` and the
local backend's lock file. None of them takes the state lock or writes anything: ``validate``
reads only the configuration, ``state list``/``show`` read the state (Terraform's
internal/command/state_list.go and show.go do not lock), and the lock is read from the file the
local backend writes beside its state (internal/states/statemgr/filesystem.go:
``.<state file>.lock.info``, JSON of statemgr.LockInfo: ID, Operation, Info, Who, Version,
Created, Path).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from adapters.errors import AdapterError, NotFound
from adapters.terraform import LockInfo, TerraformConfig, _env

LOCAL_STATE = "terraform.tfstate"
LOCAL_LOCK = ".terraform.tfstate.lock.info"
TIMEOUT = 120


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    summary: str
    detail: str = ""


def _run(config: TerraformConfig, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [config.binary, f"-chdir={config.workdir}", *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=_env(config),  # noqa: S603
                              timeout=TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise NotFound(f"Terraform binary {config.binary!r} not found; install it or fix "
                       "iac.terraform.binary") from None
    except subprocess.TimeoutExpired:
        raise AdapterError(f"`terraform {args[0]}` took over {TIMEOUT}s in "
                           f"{config.workdir}") from None


def _last_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The summary of Terraform's error (from -json diagnostics, else its stderr)."""
    for line in reversed(proc.stdout.splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        diag = event.get("diagnostic") if isinstance(event, dict) else None
        if diag:
            return f"{diag.get('summary', '')}: {diag.get('detail', '')}".strip(": ")
    text = " ".join((proc.stderr or proc.stdout).split())
    return text[:300] or f"exit status {proc.returncode}"


def validate(config: TerraformConfig) -> list[Diagnostic]:
    """The configuration's errors and warnings ([] when valid)."""
    proc = _run(config, "validate", "-json", "-no-color")
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AdapterError(f"`terraform validate` in {config.workdir} failed: "
                           f"{_last_error(proc)}") from None
    return [Diagnostic(str(d.get("severity", "")), str(d.get("summary", "")),
                       str(d.get("detail", ""))) for d in report.get("diagnostics") or []]


def state_addresses(config: TerraformConfig) -> list[str]:
    """Every resource instance address in the state (``terraform state list``)."""
    proc = _run(config, "state", "list", "-no-color")
    if proc.returncode != 0:
        raise AdapterError(f"cannot read the Terraform state in {config.workdir}: "
                           f"{_last_error(proc)}")
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def show(config: TerraformConfig) -> dict[str, Any]:
    """``terraform show -json``: the state's values (format_version 1.0)."""
    proc = _run(config, "show", "-json", "-no-color")
    try:
        return dict(json.loads(proc.stdout))
    except ValueError:
        raise AdapterError(f"`terraform show -json` in {config.workdir} failed: "
                           f"{_last_error(proc)}") from None


def local_lock(config: TerraformConfig) -> LockInfo | None:
    """The local backend's lock holder, None when the state is not locked."""
    path = os.path.join(config.workdir, LOCAL_LOCK)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return LockInfo(id="?", who=f"unreadable lock file {path} ({exc})", path=path)
    return LockInfo(id=str(data.get("ID", "")), who=str(data.get("Who", "")),
                    created=str(data.get("Created", "")),
                    operation=str(data.get("Operation", "")), path=path)

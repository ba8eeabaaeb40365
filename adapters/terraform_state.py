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
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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


# Where the project's Proxmox provider finds its credentials, never read by drbot itself: drbot's
# own token (proxmox.token_file) is not passed to Terraform. bpg/proxmox (docs/index.md,
# "Argument Reference"): `api_token` ("user@realm!name=secret") or `username`/`password` in the
# provider block, else PROXMOX_VE_API_TOKEN / PROXMOX_VE_USERNAME; the token wins over the
# password. Telmate/proxmox: `pm_api_token_id`/`pm_user`, else PM_API_TOKEN_ID / PM_USER.
# (block argument, environment variable, kind, whether the value carries a secret after "=")
LOGIN_KEYS = (("api_token", "PROXMOX_VE_API_TOKEN", "API token", True),
              ("pm_api_token_id", "PM_API_TOKEN_ID", "API token", False),
              ("username", "PROXMOX_VE_USERNAME", "user", False),
              ("pm_user", "PM_USER", "user", False))
_PROVIDER = re.compile(r'^\s*provider\s+"proxmox"\s*\{', re.MULTILINE)
_VAR = re.compile(r"^var\.([A-Za-z_][A-Za-z0-9_-]*)$")


@dataclass(frozen=True)
class ProviderLogin:
    """Who Terraform's Proxmox provider signs in as, and where that comes from. ``identity`` is
    the token id or user name ("" when drbot cannot see the value); never a secret."""

    kind: str  # "API token" or "user"
    identity: str
    source: str


def _blocks(workdir: str) -> Iterator[tuple[str, str]]:
    """(file name, body) of each `provider "proxmox"` block in the project's *.tf files."""
    for path in sorted(Path(workdir).glob("*.tf")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in _PROVIDER.finditer(text):
            depth, end = 1, match.end()
            while depth and end < len(text):
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            yield path.name, text[match.end():end - 1]


def _assigned(body: str, key: str) -> str | None:
    found = re.search(rf"^\s*{re.escape(key)}\s*=\s*(.+?)\s*$", body, re.MULTILINE)
    return found.group(1) if found else None


def _tfvars(workdir: str, name: str) -> str | None:
    """A string variable's value from the files Terraform loads by itself."""
    paths = [Path(workdir, "terraform.tfvars"), *sorted(Path(workdir).glob("*.auto.tfvars"))]
    for path in paths:
        if path.is_file():
            value = _assigned(path.read_text(encoding="utf-8", errors="replace"), name)
            if value and value.startswith('"') and value.endswith('"'):
                return value[1:-1]
    return None


def _who(value: str, secret: bool) -> str:
    """The identity in a value; for "user@realm!name=secret" the part before "=" (nothing when
    there is no "=": the value may be a bare secret, never shown)."""
    if not secret:
        return value
    return value.split("=", 1)[0] if "=" in value else ""


def _from_block(config: TerraformConfig, env: dict[str, str], file: str, key: str,
                expression: str, kind: str, secret: bool) -> ProviderLogin:
    where = f"`{key}` in the provider block of {file}"
    if expression.startswith('"') and expression.endswith('"'):
        return ProviderLogin(kind, _who(expression[1:-1], secret), where)
    var = _VAR.match(expression)
    if var:
        name = var.group(1)
        if f"TF_VAR_{name}" in env:
            return ProviderLogin(kind, _who(env[f"TF_VAR_{name}"], secret),
                                 f"{where}, from TF_VAR_{name}")
        value = _tfvars(config.workdir, name)
        if value is not None:
            return ProviderLogin(kind, _who(value, secret), f"{where}, from terraform.tfvars")
        expression = f"var.{name}"
    else:
        expression = "an expression"  # could embed a literal secret: never echoed
    return ProviderLogin(kind, "", f"{where} ({expression}, a value drbot does not see)")


def proxmox_login(config: TerraformConfig) -> ProviderLogin | None:
    """Who the project's Proxmox provider will sign in as with the environment drbot gives
    Terraform; None when neither its provider block nor that environment names anyone."""
    env = _env(config)
    blocks = list(_blocks(config.workdir))
    for key, variable, kind, secret in LOGIN_KEYS:
        for file, body in blocks:
            expression = _assigned(body, key)
            if expression is not None:
                return _from_block(config, env, file, key, expression, kind, secret)
        if env.get(variable):
            return ProviderLogin(kind, _who(env[variable], secret),
                                 f"{variable} in the worker's environment")
    return None

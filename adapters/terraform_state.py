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
from dataclasses import dataclass, field
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
    the token id or user name ("" when drbot cannot see the value); never a secret. ``secret``
    is the token's secret as the provider would send it ("" for a user, or when it is not
    visible): only the doctor uses it, to ask PVE what the token may do; never shown."""

    kind: str  # "API token" or "user"
    identity: str
    source: str
    secret: str = field(default="", repr=False, compare=False)
    visible: bool = field(default=True, compare=False)  # False: a value drbot cannot see


def _blocks(workdir: str, start: re.Pattern[str] = _PROVIDER) -> Iterator[tuple[str, str]]:
    """(file name, body) of each block opened by ``start`` (default: `provider "proxmox" {`) in
    the project's *.tf files."""
    for path in sorted(Path(workdir).glob("*.tf")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in start.finditer(text):
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


def _expression_value(config: TerraformConfig, env: dict[str, str], where: str,
                      expression: str, files: bool = False) -> tuple[str | None, str]:
    """An expression's value as Terraform would see it (a string literal, a variable from
    TF_VAR_<name>, the tfvars files Terraform loads by itself or its default, and with ``files``
    a ``file()``, as a provider login is often given), and where it comes from; None when drbot
    cannot see it. ``files`` is for provider settings only: a file's text is never shown."""
    if expression.startswith('"') and expression.endswith('"'):
        return expression[1:-1], where
    var = _VAR.match(expression)
    if var:
        name = var.group(1)
        if f"TF_VAR_{name}" in env:
            return env[f"TF_VAR_{name}"], f"{where}, from TF_VAR_{name}"
        value = _tfvars(config.workdir, name)
        if value is not None:
            return value, f"{where}, from terraform.tfvars"
        value = _default(config.workdir, name)
        if value is not None:
            return value, f"{where}, from the default of variable {name}"
        return None, f"{where} (var.{name}, a value drbot does not see)"
    read = _FILE.match(expression) if files else None
    if read:  # Terraform's file() reads a path relative to the working directory
        path = Path(config.workdir, read.group(2))
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return None, f"{where} (file {read.group(2)}, which drbot cannot read)"
        return (text.strip() if read.group(1) else text), f"{where}, from file {read.group(2)}"
    # could embed a literal secret: never echoed
    return None, f"{where} (an expression, a value drbot does not see)"


_FILE = re.compile(r'^(trimspace\()?file\("([^"$]+)"\)(?(1)\))$')


def _default(workdir: str, name: str) -> str | None:
    """A string variable's default, from its `variable "<name>"` block."""
    start = re.compile(rf'^\s*variable\s+"{re.escape(name)}"\s*\{{', re.MULTILINE)
    for _, body in _blocks(workdir, start):
        value = _assigned(body, "default")
        if value and value.startswith('"') and value.endswith('"'):
            return value[1:-1]
    return None


def _setting(config: TerraformConfig, env: dict[str, str], blocks: list[tuple[str, str]],
             key: str, variable: str) -> tuple[str | None, str] | None:
    """A provider argument as the provider reads it: its provider block first, then its
    environment variable. (value or None when not visible, where); None when unset."""
    for file, body in blocks:
        expression = _assigned(body, key)
        if expression is not None:
            return _expression_value(config, env, f"`{key}` in the provider block of {file}",
                                     expression, files=True)
    if env.get(variable):
        return env[variable], f"{variable} in the worker's environment"
    return None


# Telmate's token id has its secret in a second argument (docs/index.md, "Creating the
# connection via username and API token"): pm_api_token_secret / PM_API_TOKEN_SECRET.
SECRET_KEYS = {"pm_api_token_id": ("pm_api_token_secret", "PM_API_TOKEN_SECRET")}
# The API endpoint: bpg `endpoint` / PROXMOX_VE_ENDPOINT ("https://host:8006/"); Telmate
# `pm_api_url` / PM_API_URL ("https://host:8006/api2/json").
ENDPOINT_KEYS = (("endpoint", "PROXMOX_VE_ENDPOINT"), ("pm_api_url", "PM_API_URL"))


def proxmox_login(config: TerraformConfig) -> ProviderLogin | None:
    """Who the project's Proxmox provider will sign in as with the environment drbot gives
    Terraform; None when neither its provider block nor that environment names anyone."""
    env = _env(config)
    blocks = list(_blocks(config.workdir))
    for key, variable, kind, secret in LOGIN_KEYS:
        found = _setting(config, env, blocks, key, variable)
        if found is None:
            continue
        value, where = found
        if value is None:
            return ProviderLogin(kind, "", where, visible=False)
        if secret:
            token = value.split("=", 1)[1] if "=" in value else ""
        elif key in SECRET_KEYS:
            other = _setting(config, env, blocks, *SECRET_KEYS[key])
            token = (other[0] or "") if other else ""
        else:
            token = ""
        return ProviderLogin(kind, _who(value, secret), where, token)
    return None


def proxmox_endpoint(config: TerraformConfig) -> tuple[str | None, str] | None:
    """The PVE API URL the provider will call ("https://host:port", None when drbot cannot see
    it) and where it comes from; None when the project names none."""
    env = _env(config)
    blocks = list(_blocks(config.workdir))
    for key, variable in ENDPOINT_KEYS:
        found = _setting(config, env, blocks, key, variable)
        if found is not None:
            value, where = found
            if value is not None:
                value = value.strip().removesuffix("/").removesuffix("/api2/json")
                value = value.removesuffix("/")
            return value, where
    return None


def resource_values(config: TerraformConfig, key: str) -> tuple[set[str], list[str]]:
    """The values of ``key = ...`` anywhere in the project's *.tf files, as Terraform would see
    them (string literals and variables), and the places whose value drbot cannot see."""
    env = _env(config)
    values: set[str] = set()
    unseen: list[str] = []
    for path in sorted(Path(config.workdir).glob("*.tf")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(rf"^\s*{re.escape(key)}\s*=\s*(.+?)\s*$", text, re.MULTILINE):
            value, where = _expression_value(config, env, f"`{key}` in {path.name}",
                                             match.group(1))
            if value is None:
                unseen.append(where)
            else:
                values.add(value)
    return values, unseen


_CLONE = re.compile(r"^\s*clone\s*\{", re.MULTILINE)


def clone_sources(config: TerraformConfig) -> tuple[set[str], list[str]]:
    """The vmids the project's VMs are cloned from (bpg's ``clone { vm_id = ... }``), and the
    places whose value drbot cannot see."""
    env = _env(config)
    values: set[str] = set()
    unseen: list[str] = []
    for file, body in _blocks(config.workdir, _CLONE):
        expression = _assigned(body, "vm_id")
        if expression is None:
            continue
        literal = expression if expression.isdigit() else None
        value, where = ((literal, "") if literal else
                        _expression_value(config, env, f"`clone.vm_id` in {file}", expression))
        if value is None:
            unseen.append(where)
        else:
            values.add(value)
    return values, unseen


def has_block(config: TerraformConfig, name: str) -> bool:
    """Whether any *.tf file of the project has a ``name {`` block."""
    pattern = re.compile(rf"^\s*{re.escape(name)}\s*\{{", re.MULTILINE)
    return any(pattern.search(path.read_text(encoding="utf-8", errors="replace"))
               for path in Path(config.workdir).glob("*.tf"))

"""Terraform through its CLI: init, plan and apply with ``-json``, and force-unlock.

Runbooks plan to a file (``plan(..., out=...)``), check the planned changes
(``adapters.terraform_plan``) and apply exactly that file (``apply_plan``): what Terraform does
is then what drbot checked, and a state changed in between makes Terraform refuse the file
("Saved plan is stale") instead of applying a different plan. There is no ``apply -auto-approve``
here on purpose: nothing in drbot can apply what it did not check.

Every run is ``terraform <cmd> -input=false -no-color -json`` with an argument list; resource
addresses come from the inventory, never from chat text. The machine-readable UI stream is read
by ``adapters.terraform_stream`` into whitelisted ``Progress`` items and results.

Cancellation sends SIGINT first (Terraform then stops gracefully and releases the state lock), a
second interrupt (SIGTERM) after ``cancel_grace`` s (Terraform cancels the operation, unlocks and
exits within about 5 s), and SIGKILL after another ``cancel_grace`` s. A run killed outright may
leave a remote backend's lock held; the next run then reports it as ``StateLocked``.

``check_revision`` and ``check_backend`` (``adapters.terraform_checks``) are preflight calls of
their own: ``plan``/``apply_plan`` do not repeat them, so a runbook calls them first (and puts the
commit into the plan digest). Both modules' public names are importable from here too.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters import subprocesses
from adapters.errors import AdapterError, Cancelled, Conflict, Refused
from adapters.progress import Hooks, Progress, one_line
from adapters.terraform_checks import (
    check_backend,
    check_revision,
    configured_backend,
    initialised_backend,
)
from adapters.terraform_stream import (
    ChangeSummary,
    LockInfo,
    PlannedChange,
    StateLocked,
    UiStream,
    failure,
    parse_line,
    parse_lock,
)

__all__ = [
    "ApplyResult", "ChangeSummary", "LockInfo", "PlanResult", "PlannedChange", "StateLocked",
    "TerraformConfig", "apply_plan", "check_backend", "check_revision", "force_unlock",
    "init", "needs_init", "parse_line", "parse_lock", "plan",
]

_INIT_MARK = "drbot-lock.sha256"
# A resource address: no whitespace or control characters and no leading '-' (it would be a flag).
_ADDRESS = re.compile(r"^[A-Za-z_][^\s\x00-\x1f]*$")
_LOCK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,200}$")


@dataclass
class TerraformConfig:
    """Where and how to run Terraform (the ``iac`` section of the inventory)."""

    workdir: str
    binary: str = "terraform"
    revision: str | None = None
    allow_local_state: bool = False
    plugin_cache: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 3600
    cancel_grace: float = 20


@dataclass
class PlanResult:
    changes: list[PlannedChange]
    summary: ChangeSummary


@dataclass
class ApplyResult:
    summary: ChangeSummary
    resources: list[str]
    outputs: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Running terraform


# Terraform's own settings and the credentials its providers and backend read by convention.
TF_PREFIXES = ("TF_", "AWS_", "PM_", "PROXMOX_VE_")


def _env(config: TerraformConfig) -> dict[str, str]:
    """A whitelist, never the worker's whole environment (which holds drbot's own secrets)."""
    env = subprocesses.minimal_env(config.env, TF_PREFIXES)
    env["TF_IN_AUTOMATION"] = "1"
    env["TF_INPUT"] = "0"
    if config.plugin_cache:
        os.makedirs(config.plugin_cache, exist_ok=True)
        env["TF_PLUGIN_CACHE_DIR"] = config.plugin_cache
    return env


def _lock_hash(workdir: str) -> str:
    try:
        with open(os.path.join(workdir, ".terraform.lock.hcl"), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return "none"


def needs_init(config: TerraformConfig) -> bool:
    """True when ``.terraform`` is missing, the dependency lock file changed since the last
    ``init`` run here, or the configured backend differs from the initialised one."""
    dot = os.path.join(config.workdir, ".terraform")
    try:
        with open(os.path.join(dot, _INIT_MARK), encoding="utf-8") as f:
            recorded = f.read().strip()
    except FileNotFoundError:
        return True
    if recorded != _lock_hash(config.workdir):
        return True
    try:
        declared = configured_backend(config.workdir) or "local"
    except (OSError, ValueError):
        return True  # let init report what is wrong with the configuration
    initialised = initialised_backend(config.workdir) or "local"
    return declared != initialised


def init(config: TerraformConfig, hooks: Hooks) -> bool:
    """Run ``terraform init -input=false -no-color`` when needed; True when it ran."""
    if not needs_init(config):
        return False
    hooks.report(Progress("terraform init", target=config.workdir, status="started"))
    errors: list[str] = []

    def on_line(line: str) -> None:
        if line.startswith("Error: ") and len(errors) < 5:
            errors.append(line[7:].strip())

    argv = [config.binary, "init", "-input=false", "-no-color"]
    rc = _run(config, argv, hooks, on_line, "init")
    if rc != 0:
        raise AdapterError(
            f"terraform init in {config.workdir} failed (exit {rc}): "
            + ("; ".join(errors) or "no error message; run it by hand to see why")
        )
    dot = os.path.join(config.workdir, ".terraform")
    os.makedirs(dot, exist_ok=True)
    with open(os.path.join(dot, _INIT_MARK), "w", encoding="utf-8") as f:
        f.write(_lock_hash(config.workdir))
    hooks.report(Progress("terraform init done", target=config.workdir, status="done"))
    return True


def _run(
    config: TerraformConfig,
    argv: list[str],
    hooks: Hooks,
    on_line: Callable[[str], None],
    command: str,
) -> int:
    what = f"terraform {command} in {config.workdir}"
    try:
        return subprocesses.run(
            argv,
            hooks=hooks,
            on_line=on_line,
            cwd=config.workdir,
            env=_env(config),
            timeout=config.timeout,
            grace=config.cancel_grace,
            what=what,
        )
    except Cancelled as exc:
        raise Cancelled(
            f"{what} was cancelled; Terraform was asked to stop (SIGINT) so that it releases the "
            "state lock. Run a plan to see what was changed before it stopped"
        ) from exc


def _check_addresses(kind: str, addresses: Sequence[str]) -> list[str]:
    if isinstance(addresses, str):
        raise TypeError(f"{kind} must be a sequence of addresses, not a string")
    for addr in addresses:
        if not _ADDRESS.match(addr):
            raise Refused(f"{addr!r} is not a Terraform resource address; fix it in the inventory")
    return [f"-{kind}={addr}" for addr in addresses]


def _argv(
    config: TerraformConfig,
    command: str,
    targets: Sequence[str],
    replace: Sequence[str],
    destroy: bool,
    out: str | None = None,
) -> list[str]:
    argv = [config.binary, command, "-input=false", "-no-color", "-json"]
    if command == "apply":
        argv.append("-auto-approve")
    if destroy:
        argv.append("-destroy")
    argv += _check_addresses("target", targets)
    argv += _check_addresses("replace", replace)
    if out is not None:
        argv.append(f"-out={_plan_path(out)}")
    return argv


def _plan_path(path: str) -> str:
    """An absolute plan file path (it could not pass for a flag), outside the configuration
    directory: the job's own folder, never the checkout other runs share."""
    if not os.path.isabs(path) or any(ch in path for ch in "\x00\n\r"):
        raise Refused(f"{path!r} is not an absolute plan file path")
    return path


def _operation(
    config: TerraformConfig,
    command: str,
    hooks: Hooks,
    targets: Sequence[str],
    replace: Sequence[str],
    destroy: bool,
    out: str | None = None,
) -> UiStream:
    return _stream(config, command, hooks, _argv(config, command, targets, replace, destroy, out))


def _stream(config: TerraformConfig, command: str, hooks: Hooks, argv: list[str]) -> UiStream:
    init(config, hooks)
    stream = UiStream(hooks)
    rc = _run(config, argv, hooks, stream, command)
    if rc != 0:
        raise failure(config.workdir, command, rc, stream)
    return stream


def plan(
    config: TerraformConfig,
    *,
    targets: Sequence[str] = (),
    replace: Sequence[str] = (),
    destroy: bool = False,
    out: str | None = None,
    hooks: Hooks,
) -> PlanResult:
    """``terraform plan -json``: the planned changes and their summary (init first if needed);
    with ``out`` (an absolute path) the plan is saved there for ``apply_plan``."""
    stream = _operation(config, "plan", hooks, targets, replace, destroy, out)
    return PlanResult(changes=stream.changes, summary=stream.summary)


def apply_plan(config: TerraformConfig, plan_file: str, *, hooks: Hooks) -> ApplyResult:
    """``terraform apply -json <plan file>``: exactly the saved plan, nothing planned anew.

    A saved plan needs no ``-auto-approve`` (Terraform does not ask for approval of a saved
    plan) and takes no planning options (-target, -replace, -destroy: they are in the plan);
    developer.hashicorp.com/terraform/cli/commands/apply, "Saved Plan Mode". When the state
    changed since the plan, Terraform refuses it ("Saved plan is stale",
    hashicorp/terraform internal/backend/local/backend_local.go) and nothing is applied.
    """
    argv = [config.binary, "apply", "-input=false", "-no-color", "-json", _plan_path(plan_file)]
    try:
        stream = _stream(config, "apply", hooks, argv)
    except AdapterError as exc:
        if "Saved plan is stale" in str(exc) or "Saved plan does not match" in str(exc):
            raise Conflict(
                f"terraform apply in {config.workdir} refused the plan drbot checked: the state "
                "changed after it was made (another Terraform run?), so nothing was applied. "
                "Retry the job: it plans again from the state as it is now") from exc
        raise
    return ApplyResult(summary=stream.summary, resources=stream.applied, outputs=stream.outputs)


def force_unlock(config: TerraformConfig, lock_id: str, *, hooks: Hooks) -> None:
    """``terraform force-unlock -force <lock_id>``: only for the approved command of that name."""
    if not _LOCK_ID.match(lock_id):
        raise Refused(f"{lock_id!r} is not a Terraform lock ID")
    init(config, hooks)
    errors: list[str] = []

    def on_line(line: str) -> None:
        if line.startswith("Error") and len(errors) < 5:
            errors.append(one_line(line, 200))

    argv = [config.binary, "force-unlock", "-force", "-no-color", lock_id]
    rc = _run(config, argv, hooks, on_line, "force-unlock")
    if rc != 0:
        raise AdapterError(
            f"terraform force-unlock {lock_id} in {config.workdir} failed (exit {rc}): "
            + ("; ".join(errors) or "no error message")
        )
    hooks.report(Progress(f"state lock {lock_id} released", target=config.workdir, status="done"))

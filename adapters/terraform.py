"""Terraform through its CLI: revision and backend checks, init, plan and apply with ``-json``.

Every run is ``terraform <cmd> -input=false -no-color -json`` with an argument list; resource
addresses come from the inventory, never from chat text. The machine-readable UI stream (one JSON
object per line) is turned into whitelisted ``Progress`` items: never raw lines, never outputs
wholesale. Sensitive output values are dropped.

Cancellation sends SIGINT first (Terraform then stops gracefully and releases the state lock), a
second interrupt (SIGTERM) after ``cancel_grace`` s (Terraform cancels the operation, unlocks and
exits within about 5 s), and SIGKILL after another ``cancel_grace`` s. A run killed outright may
leave a remote backend's lock held; the next run then reports it as ``StateLocked``.

``check_revision`` and ``check_backend`` are preflight calls of their own: ``plan``/``apply`` do
not repeat them, so a runbook calls them first (and puts the commit into the plan digest).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters import subprocesses
from adapters.errors import AdapterError, Cancelled, Conflict, NotFound, Refused
from adapters.progress import Hooks, Progress, one_line

_LOCK_SUMMARY = "Error acquiring the state lock"
_INIT_MARK = "drbot-lock.sha256"
_DETAIL_MAX = 500
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


@dataclass(frozen=True)
class PlannedChange:
    address: str
    action: str
    reason: str = ""


@dataclass(frozen=True)
class ChangeSummary:
    """Terraform's ``change_summary`` counts (internal/command/views/json/change_summary.go):
    ``import`` since 1.5, ``action_invocation`` since 1.14; absent ones are 0."""

    add: int = 0
    change: int = 0
    remove: int = 0
    imported: int = 0
    actions: int = 0

    def text(self, operation: str) -> str:
        """The summary as Terraform words it, imports and actions included when there are any."""
        imports = f"{self.imported} {'imported' if operation == 'apply' else 'to import'}, " \
            if self.imported else ""
        actions = f"; {self.actions} action(s) invoked" if self.actions else ""
        if operation == "destroy":
            return f"destroy: {self.remove} destroyed{actions}"
        if operation == "apply":
            return (f"apply: {imports}{self.add} added, {self.change} changed, {self.remove} "
                    f"destroyed{actions}")
        return (f"{operation}: {imports}{self.add} to add, {self.change} to change, "
                f"{self.remove} to destroy{actions}")


@dataclass
class PlanResult:
    changes: list[PlannedChange]
    summary: ChangeSummary


@dataclass
class ApplyResult:
    summary: ChangeSummary
    resources: list[str]
    outputs: dict[str, Any]


@dataclass(frozen=True)
class LockInfo:
    """Who holds a Terraform state lock, as Terraform reports it."""

    id: str
    who: str = ""
    created: str = ""
    operation: str = ""
    path: str = ""


class StateLocked(Conflict):
    """The state is locked by another Terraform run; ``lock`` says by whom."""

    def __init__(self, message: str, lock: LockInfo) -> None:
        super().__init__(message)
        self.lock = lock


# ---------------------------------------------------------------------------------------------
# Checks before any run


def _git(workdir: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - an argument list
        ["git", "-C", workdir, *args], capture_output=True, text=True, timeout=60, check=False,
        env=subprocesses.minimal_env(),
    )


def check_revision(config: TerraformConfig) -> str:
    """Return the workdir's Git commit, refusing a dirty or wrong checkout.

    With ``revision`` set, the workdir must be a Git checkout whose HEAD is exactly that commit
    (a branch or tag name is resolved first) and ``git status --porcelain`` must be empty. Without
    it, the HEAD commit is returned (with ``+dirty`` appended when the tree has changes, so a
    digest never mistakes it for the clean commit), or ``""`` when the workdir is not a checkout.
    """
    if not os.path.isdir(config.workdir):
        raise NotFound(f"Terraform workdir {config.workdir} does not exist; fix iac.terraform.path")
    head = _git(config.workdir, "rev-parse", "--verify", "HEAD^{commit}")
    if head.returncode != 0:
        if config.revision is None:
            return ""
        raise Refused(
            f"{config.workdir} is not a Git checkout, but revision {config.revision} is required; "
            "clone the repository there and check that revision out"
        )
    actual = head.stdout.strip()
    dirty = _dirty_files(config.workdir)
    if config.revision is None:
        return actual + ("+dirty" if dirty else "")
    expected = _resolve(config.workdir, config.revision)
    if actual != expected:
        raise Refused(
            f"{config.workdir} is at commit {actual}, expected {config.revision} "
            f"({expected or 'not in this clone'}); "
            f"run `git fetch && git checkout {config.revision}` there"
        )
    if dirty:
        shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "")
        raise Refused(
            f"{config.workdir} at {actual} has local changes ({shown}); Git is the source of "
            "truth: commit and push them, or discard them with `git checkout -- . && git clean -fd`"
        )
    return actual


def _resolve(workdir: str, revision: str) -> str:
    res = _git(
        workdir, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"
    )
    return res.stdout.strip() if res.returncode == 0 else ""


def _dirty_files(workdir: str) -> list[str]:
    res = _git(workdir, "status", "--porcelain")
    if res.returncode != 0:
        raise AdapterError(f"`git status` failed in {workdir}: {res.stderr.strip()[:300]}")
    return [line[3:] for line in res.stdout.splitlines() if line.strip()]


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)(#|//).*$", "", text)


def _configured_backend(workdir: str) -> str | None:
    """The backend named in the configuration: ``backend "TYPE"`` or ``cloud`` inside a
    top-level ``terraform`` block of a ``*.tf`` file, or ``terraform.backend`` in ``*.tf.json``."""
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        if name.endswith(".tf.json"):
            with open(path, encoding="utf-8") as f:
                blocks = json.load(f).get("terraform", [])
            for block in blocks if isinstance(blocks, list) else [blocks]:
                if "cloud" in block:
                    return "cloud"
                if block.get("backend"):
                    backend = block["backend"]
                    backend = backend[0] if isinstance(backend, list) else backend
                    return next(iter(backend))
        elif name.endswith(".tf"):
            with open(path, encoding="utf-8") as f:
                text = _strip_comments(f.read())
            for body in _blocks(text, "terraform"):
                found = re.search(r'\bbackend\s+"([^"]+)"\s*\{', body)
                if found:
                    return found.group(1)
                if re.search(r"\bcloud\s*\{", body):
                    return "cloud"
    return None


def _blocks(text: str, keyword: str) -> Iterable[str]:
    """Bodies of the top-level ``keyword { ... }`` blocks (braces balanced; strings ignored)."""
    for match in re.finditer(rf"(?m)^\s*{keyword}\s*\{{", text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        yield text[match.end() : i - 1]


def _initialised_backend(workdir: str) -> str | None:
    path = os.path.join(workdir, ".terraform", "terraform.tfstate")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    backend = data.get("backend") or {}
    return backend.get("type") or None


def check_backend(config: TerraformConfig) -> str:
    """Return the backend type, refusing local state unless ``allow_local_state``.

    What is checked: the backend the configuration declares (a ``backend "TYPE"`` or ``cloud``
    block inside a top-level ``terraform { }`` block of a ``*.tf`` file, or ``terraform.backend``
    in ``*.tf.json``; none means the implicit ``local`` backend). The configuration is the
    truth, not ``.terraform/terraform.tfstate``: that file only records what the last ``init``
    set up, and ``needs_init`` compares the two so that a changed backend is initialised again.
    A remote backend with a non-empty ``terraform.tfstate`` left in the workdir is refused too:
    someone ran with local state there, and that state may hold resources the remote one lacks.
    """
    if not os.path.isdir(config.workdir):
        raise NotFound(f"Terraform workdir {config.workdir} does not exist; fix iac.terraform.path")
    try:
        declared = _configured_backend(config.workdir)
    except (OSError, ValueError) as exc:
        raise Refused(
            f"cannot read the Terraform configuration in {config.workdir}: {exc}"
        ) from exc
    backend = declared or "local"
    if backend == "local":
        if not config.allow_local_state:
            raise Refused(
                f"Terraform in {config.workdir} keeps its state locally (no remote backend is "
                "configured); configure a remote backend (s3, http, pg, ...) or set "
                "allow_local_state in the iac section of the inventory"
            )
        return backend
    stray = os.path.join(config.workdir, "terraform.tfstate")
    if os.path.isfile(stray) and os.path.getsize(stray) > 0 and not config.allow_local_state:
        raise Refused(
            f"{stray} exists although the backend is {backend!r}; someone ran Terraform with local "
            "state here. Migrate it (`terraform init -migrate-state`) or remove it, then retry"
        )
    return backend


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
        declared = _configured_backend(config.workdir) or "local"
    except (OSError, ValueError):
        return True  # let init report what is wrong with the configuration
    initialised = _initialised_backend(config.workdir) or "local"
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
) -> list[str]:
    argv = [config.binary, command, "-input=false", "-no-color", "-json"]
    if command == "apply":
        argv.append("-auto-approve")
    if destroy:
        argv.append("-destroy")
    argv += _check_addresses("target", targets)
    argv += _check_addresses("replace", replace)
    return argv


def parse_line(line: str) -> dict[str, Any] | None:
    """One line of ``-json`` output as a dict with a ``type``; None for anything else."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    return event


def _summary(changes: dict[str, Any]) -> ChangeSummary:
    return ChangeSummary(
        add=int(changes.get("add", 0)),
        change=int(changes.get("change", 0)),
        remove=int(changes.get("remove", 0)),
        imported=int(changes.get("import", 0)),
        actions=int(changes.get("action_invocation", 0)),
    )


@dataclass
class _Stream:
    """Folds the ``-json`` events of one run into results and whitelisted progress."""

    hooks: Hooks
    changes: list[PlannedChange] = field(default_factory=list)
    summary: ChangeSummary = field(default_factory=ChangeSummary)
    planned: ChangeSummary = field(default_factory=ChangeSummary)  # the plan's, for done/total
    applied: list[str] = field(default_factory=list)
    done: int = 0  # resources done, counted as the plan's summary counts them
    outputs: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    text_errors: list[str] = field(default_factory=list)

    def __call__(self, line: str) -> None:
        event = parse_line(line)
        if event is None:
            if line.startswith("Error: ") and len(self.text_errors) < 5:
                self.text_errors.append(one_line(line[7:], 200))
            return
        handler = getattr(self, "_on_" + event["type"], None)
        if handler is not None:
            progress = handler(event)
            if progress is not None:
                self.hooks.report(progress)

    def _on_planned_change(self, event: dict[str, Any]) -> Progress:
        change = event.get("change") or {}
        addr = str((change.get("resource") or {}).get("addr", ""))
        action = str(change.get("action", ""))
        reason = str(change.get("reason", "") or "")
        self.changes.append(PlannedChange(addr, action, reason))
        why = f" ({reason})" if reason else ""
        return Progress(f"plan: {action} {addr}{why}", target=addr, status=action)

    def _on_resource_drift(self, event: dict[str, Any]) -> Progress:
        change = event.get("change") or {}
        addr = str((change.get("resource") or {}).get("addr", ""))
        action = str(change.get("action", ""))
        return Progress(
            f"drift: {addr} changed outside Terraform ({action})", target=addr, status="drift"
        )

    def _hook(self, event: dict[str, Any]) -> tuple[str, str]:
        hook = event.get("hook") or {}
        return str((hook.get("resource") or {}).get("addr", "")), str(hook.get("action", ""))

    def _count(self) -> str:
        """Resources done of the plan's total: each create, update and destroy is one
        ``apply_complete`` (a replace is a destroy and a create, as the plan's summary counts
        it); empty until the plan's ``change_summary`` has come."""
        total = self.planned.add + self.planned.change + self.planned.remove
        if not total:
            return ""
        return f" ({self.done}/{max(total, self.done)} resources done)"

    def _on_apply_start(self, event: dict[str, Any]) -> Progress:
        addr, action = self._hook(event)
        return Progress(f"{addr}: {action} started{self._count()}", target=addr, status=action)

    def _on_apply_progress(self, event: dict[str, Any]) -> Progress:
        addr, action = self._hook(event)
        elapsed = (event.get("hook") or {}).get("elapsed_seconds", "?")
        return Progress(f"{addr}: still {action} ({elapsed} s){self._count()}", target=addr,
                        status=action)

    def _on_apply_complete(self, event: dict[str, Any]) -> Progress:
        addr, action = self._hook(event)
        self.applied.append(addr)
        self.done += 2 if action == "replace" else 1  # one event for both halves, if ever
        return Progress(f"{addr}: {action} complete{self._count()}", target=addr,
                        status="complete")

    def _on_apply_errored(self, event: dict[str, Any]) -> Progress:
        addr, action = self._hook(event)
        return Progress(f"{addr}: {action} failed", target=addr, status="errored")

    def _on_change_summary(self, event: dict[str, Any]) -> Progress:
        changes = event.get("changes") or {}
        self.summary = _summary(changes)
        op = str(changes.get("operation", ""))
        if op == "plan":
            self.planned = self.summary
        return Progress(self.summary.text(op), status=op)

    def _on_diagnostic(self, event: dict[str, Any]) -> Progress:
        diag = event.get("diagnostic") or {}
        self.diagnostics.append(diag)
        severity = str(diag.get("severity", ""))
        text = str(diag.get("summary", ""))
        if diag.get("detail") and text != _LOCK_SUMMARY:
            text += ": " + str(diag["detail"])
        target = str(diag.get("address", "") or "")
        return Progress(one_line(text, _DETAIL_MAX), target=target, status=severity)

    def _on_outputs(self, event: dict[str, Any]) -> None:
        for name, out in (event.get("outputs") or {}).items():
            if isinstance(out, dict) and not out.get("sensitive") and "value" in out:
                self.outputs[name] = out["value"]

    def errors(self) -> list[dict[str, Any]]:
        return [d for d in self.diagnostics if d.get("severity") == "error"]


def parse_lock(detail: str) -> LockInfo:
    """The ``Lock Info:`` block of Terraform's "Error acquiring the state lock" detail."""
    fields: dict[str, str] = {}
    for line in detail.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key in ("ID", "Path", "Operation", "Who", "Created"):
            fields[key] = value.strip()
    return LockInfo(
        id=fields.get("ID", ""),
        who=fields.get("Who", ""),
        created=fields.get("Created", ""),
        operation=fields.get("Operation", ""),
        path=fields.get("Path", ""),
    )


def _fail(config: TerraformConfig, command: str, rc: int, stream: _Stream) -> AdapterError:
    for diag in stream.errors():
        if diag.get("summary") == _LOCK_SUMMARY:
            lock = parse_lock(str(diag.get("detail", "")))
            return StateLocked(
                f"the Terraform state of {config.workdir} is locked by {lock.who or 'someone'} "
                f"since {lock.created or 'an unknown time'} (lock ID {lock.id or 'unknown'}, "
                f"operation {lock.operation or 'unknown'}). Wait for that run to finish; if it "
                f"is dead, `terraform force-unlock {lock.id}` releases the lock, and that is a "
                "separate command that needs its own approval",
                lock,
            )
    summaries = [one_line(str(d.get("summary", "")), 200) for d in stream.errors()][:5]
    summaries = summaries or stream.text_errors
    return AdapterError(
        f"terraform {command} in {config.workdir} failed (exit {rc}): "
        + ("; ".join(summaries) or "no diagnostics; run it by hand to see why")
    )


def _operation(
    config: TerraformConfig,
    command: str,
    hooks: Hooks,
    targets: Sequence[str],
    replace: Sequence[str],
    destroy: bool,
) -> _Stream:
    argv = _argv(config, command, targets, replace, destroy)
    init(config, hooks)
    stream = _Stream(hooks)
    rc = _run(config, argv, hooks, stream, command)
    if rc != 0:
        raise _fail(config, command, rc, stream)
    return stream


def plan(
    config: TerraformConfig,
    *,
    targets: Sequence[str] = (),
    replace: Sequence[str] = (),
    destroy: bool = False,
    hooks: Hooks,
) -> PlanResult:
    """``terraform plan -json``: the planned changes and their summary (init first if needed)."""
    stream = _operation(config, "plan", hooks, targets, replace, destroy)
    return PlanResult(changes=stream.changes, summary=stream.summary)


def apply(
    config: TerraformConfig,
    *,
    targets: Sequence[str] = (),
    replace: Sequence[str] = (),
    destroy: bool = False,
    hooks: Hooks,
) -> ApplyResult:
    """``terraform apply -json -auto-approve``: summary, applied addresses, safe outputs."""
    stream = _operation(config, "apply", hooks, targets, replace, destroy)
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

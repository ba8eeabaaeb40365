"""Ansible playbooks through ansible-runner, with a per-job known_hosts and whitelisted progress.

Each run gets a fresh private data directory (removed afterwards), the venv's ``bin`` on PATH
for ``ansible-playbook``, and SSH options that make the job's own known_hosts file the only one
consulted: ``-o UserKnownHostsFile=<job file> -o GlobalKnownHostsFile=/dev/null
-o StrictHostKeyChecking=accept-new``. The keys of rebuilt hosts are removed from that file first
(``ssh-keygen -R``), so their new key is accepted on first contact and the old one is gone,
while a key that changes without a reset is still refused.

These options replace Ansible's default ``ssh_args``, which also drops its ControlPersist
master connections: a persistent ssh master outlives the run and would escape the job's
process tree.

The playbook runs in a process of its own (``adapters.ansible_run``, see there why), in its own
session: the worker records its pid, reads its whitelisted progress as JSON lines, and on cancel
or timeout sends it SIGINT; it ends the playbook's whole tree (found through parent pids, since
Ansible's workers and ssh start sessions of their own) and reports that it did.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters import subprocesses
from adapters.errors import AdapterError, Cancelled, NotFound, TimedOut, Unreachable
from adapters.progress import Hooks, Progress, one_line

_MSG_MAX = 300
# How long the playbook's process gives its tree between SIGTERM and SIGKILL; the worker waits
# twice that for the process itself.
KILL_GRACE = 10.0


@dataclass
class AnsibleConfig:
    """Where the playbooks live and how to reach the hosts (the ``iac`` inventory section)."""

    project_dir: str
    inventory: str
    private_key_file: str | None = None
    vault_password_file: str | None = None
    extravars: dict[str, Any] = field(default_factory=dict)
    envvars: dict[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 3600


@dataclass(frozen=True)
class HostFailure:
    host: str
    task: str
    message: str


@dataclass
class PlaybookResult:
    status: str
    rc: int | None
    stats: dict[str, dict[str, int]]
    failures: list[HostFailure]


class PlaybookFailed(AdapterError):
    """A playbook ended with failed or unreachable hosts; ``result`` has the details."""

    def __init__(self, message: str, result: PlaybookResult) -> None:
        super().__init__(message)
        self.result = result


class HostsUnreachable(PlaybookFailed, Unreachable):
    """Every failure was a host that could not be reached (a temporary condition)."""


# ---------------------------------------------------------------------------------------------
# known_hosts


ANSIBLE_PREFIXES = ("ANSIBLE_",)  # the operator's own Ansible settings (ANSIBLE_CONFIG, ...)


def _venv_bin() -> str:
    return os.path.dirname(sys.executable)


def _tool_env(config: AnsibleConfig) -> dict[str, str]:
    env = subprocesses.minimal_env(config.envvars, ANSIBLE_PREFIXES)
    env["PATH"] = _venv_bin() + os.pathsep + env.get("PATH", os.defpath)
    if config.vault_password_file:
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = config.vault_password_file
    return env


def _ssh_names(config: AnsibleConfig, host: str) -> set[str]:
    """The names ssh files ``host``'s key under: the inventory host, its ``ansible_host``, and
    ``[name]:port`` when ``ansible_port`` is not 22. ``host`` may also be ``name:port``."""
    names = {host}
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and name and not name.endswith("]"):
        names.add(f"[{name}]:{port}")
    found = subprocess.run(  # noqa: S603 - an argument list
        ["ansible-inventory", "-i", config.inventory, "--host", host],
        capture_output=True,
        text=True,
        env=_tool_env(config),
        cwd=config.project_dir,
        timeout=120,
        check=False,
    )
    if found.returncode != 0:
        return names
    try:
        hostvars = json.loads(found.stdout)
    except ValueError:
        return names
    addresses = {host, str(hostvars.get("ansible_host") or host)}
    port = str(hostvars.get("ansible_port") or hostvars.get("ansible_ssh_port") or "22")
    for address in addresses:
        names.add(address)
        if port != "22":
            names.add(f"[{address}]:{port}")
    return names


def reset_known_hosts(config: AnsibleConfig, known_hosts: str, hosts: Sequence[str]) -> None:
    """Remove every key of ``hosts`` from ``known_hosts`` (``ssh-keygen -R``)."""
    if not hosts or not os.path.exists(known_hosts):
        return
    for host in hosts:
        for name in sorted(_ssh_names(config, host)):
            res = subprocess.run(  # noqa: S603 - an argument list
                ["ssh-keygen", "-R", name, "-f", known_hosts],
                env=subprocesses.minimal_env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if res.returncode != 0:
                raise AdapterError(
                    f"could not remove the SSH key of {name} from {known_hosts}: "
                    f"{one_line(res.stderr, _MSG_MAX)}; check that ssh-keygen is installed"
                )
    with contextlib.suppress(FileNotFoundError):
        os.remove(known_hosts + ".old")


def _ssh_args(known_hosts: str) -> str:
    options = (
        f"UserKnownHostsFile={known_hosts}",
        "GlobalKnownHostsFile=/dev/null",
        "StrictHostKeyChecking=accept-new",
    )
    return " ".join(f"-o {shlex.quote(o)}" for o in options)


# ---------------------------------------------------------------------------------------------
# Running a playbook


def _check_inputs(config: AnsibleConfig, playbook: str, limit: str) -> None:
    if not os.path.isfile(os.path.join(config.project_dir, playbook)):
        raise NotFound(
            f"playbook {playbook} not found in {config.project_dir}; "
            "fix iac.ansible in the inventory"
        )
    if not limit or limit.startswith("-") or any(c.isspace() for c in limit):
        raise AdapterError(f"{limit!r} is not a valid host limit for {playbook}")
    search = _venv_bin() + os.pathsep + os.environ.get("PATH", "")
    if shutil.which("ansible-playbook", path=search) is None:
        raise NotFound("ansible-playbook is not next to this Python nor on PATH; install it")


def _runner_env(config: AnsibleConfig, known_hosts: str) -> dict[str, str]:
    env = dict(config.envvars)
    env["PATH"] = _venv_bin() + os.pathsep + env.get("PATH", os.environ.get("PATH", os.defpath))
    env["ANSIBLE_SSH_ARGS"] = _ssh_args(known_hosts)
    env["ANSIBLE_HOST_KEY_CHECKING"] = "True"
    if config.private_key_file:
        env["ANSIBLE_PRIVATE_KEY_FILE"] = config.private_key_file
    if config.vault_password_file:
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = config.vault_password_file
    return env


_KEEP_LINES = 3  # of a child's non-JSON output (a crash), for the error message


@dataclass
class _Child:
    """What the playbook's process said on stdout (see ``adapters.ansible_run``)."""

    hooks: Hooks
    result: dict[str, Any] | None = None
    error: str | None = None
    other: list[str] = field(default_factory=list)

    def line(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):  # Python's own complaints, a crash
            self.other = [*self.other, one_line(text, _MSG_MAX)][-_KEEP_LINES:]
            return
        if isinstance(message.get("pid"), int):
            self.hooks.spawned(message["pid"])
        elif isinstance(message.get("progress"), dict):
            fields = {k: str(v) for k, v in message["progress"].items() if k in _PROGRESS_FIELDS}
            self.hooks.report(Progress(**fields))
        elif isinstance(message.get("result"), dict):
            self.result = message["result"]
        elif isinstance(message.get("error"), str):
            self.error = message["error"]


_PROGRESS_FIELDS = frozenset(Progress.__dataclass_fields__)


def run_playbook(
    config: AnsibleConfig,
    playbook: str,
    *,
    limit: str,
    known_hosts_reset: Sequence[str] = (),
    hooks: Hooks,
    artifact_dir: str,
    ident: str,
    known_hosts: str | None = None,
) -> PlaybookResult:
    """Run ``playbook`` (relative to ``project_dir``) limited to ``limit``; see the module doc.

    ``known_hosts`` defaults to ``<artifact_dir>/known_hosts``, so it lasts for the job (its
    retries trust the keys met before) and no longer. ``known_hosts_reset`` names inventory
    hosts (or ``address[:port]``) whose keys are removed before the run.
    """
    _check_inputs(config, playbook, limit)
    os.makedirs(artifact_dir, mode=0o700, exist_ok=True)
    known_hosts = known_hosts or os.path.join(artifact_dir, "known_hosts")
    reset_known_hosts(config, known_hosts, list(known_hosts_reset))
    spec = {
        "project_dir": config.project_dir, "inventory": config.inventory, "playbook": playbook,
        "limit": limit, "extravars": config.extravars, "timeout": config.timeout,
        "envvars": _runner_env(config, known_hosts), "artifact_dir": artifact_dir, "ident": ident,
    }
    what = f"playbook {playbook} on {limit}"
    hooks.report(Progress(what, target=limit, status="started"))
    child = _Child(hooks)
    try:
        subprocesses.run(  # a whitelisted environment: ansible-runner passes its own on
            [sys.executable, "-m", "adapters.ansible_run"], hooks=hooks, on_line=child.line,
            env=subprocesses.minimal_env(prefixes=ANSIBLE_PREFIXES),
            stdin=json.dumps(spec), timeout=config.timeout + 2 * KILL_GRACE + 30,
            grace=2 * KILL_GRACE, what=what)
    except (Cancelled, TimedOut):
        if child.result is None:
            raise
    return _outcome(what, child)


def _outcome(what: str, child: _Child) -> PlaybookResult:
    if child.error is not None:
        raise AdapterError(f"ansible-runner could not start {what}: {child.error}; check "
                           "iac.ansible (project path, inventory) in the inventory file")
    r = child.result
    if r is None:
        said = "; ".join(child.other) or "no output"
        raise AdapterError(f"{what}: the Ansible process ended without a result ({said})")
    failures = [HostFailure(**f) for f in r["failures"]]
    result = PlaybookResult(status=r["status"], rc=r["rc"], stats=r["stats"], failures=failures)
    if r["hook_failed"]:
        raise AdapterError(f"{what} was stopped: reporting its progress failed")
    if r["timed_out"] or r["status"] == "timeout":
        raise TimedOut(f"{what} did not finish in time and was stopped; hosts may be half done")
    if r["cancelled"] or r["status"] == "canceled":
        raise Cancelled(
            f"{what} was cancelled and its processes ended; hosts may be half configured, "
            "re-run the playbook to finish"
        )
    if r["status"] == "successful":
        return result
    if failures:
        summary = "; ".join(
            f"{f.host}: task '{f.task}'" + (f": {f.message}" if f.message else "")
            for f in failures[:5]
        )
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        cls = PlaybookFailed if r["any_failed"] else HostsUnreachable
        raise cls(f"{what} failed: {summary}{more}", result)
    detail = "; ".join(r["errors"]) or "no task failed; check the playbook and the inventory"
    raise PlaybookFailed(f"{what} failed (ansible-playbook exit {r['rc']}): {detail}", result)

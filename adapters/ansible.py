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

Events become ``Progress`` built only from task names, hosts, statuses and counts. Task results
(``res``), environments and command output never leave this module; a failed task contributes
its ``res.msg`` only, truncated. ansible-runner keeps no job events on disk either (the event
handler returns False), since they carry the full results.

ansible-runner starts ``ansible-playbook`` in its own session, and Ansible's workers and ssh
start sessions of their own; on cancel or timeout the whole tree (found through parent pids)
is ended here, since ansible-runner's own kill (SIGKILL to the first process group) would leave
the workers and their commands running.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters import subprocesses
from adapters.errors import AdapterError, Cancelled, NotFound, TimedOut, Unreachable
from adapters.progress import Hooks, Progress

_MSG_MAX = 300
_MARKER = "DRBOT_ANSIBLE_RUN"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_KILL_GRACE = 10.0
_STATS_KEYS = ("ok", "changed", "failures", "dark", "skipped", "processed", "rescued", "ignored")


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


def _cut(text: object, limit: int = _MSG_MAX) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# known_hosts


def _venv_bin() -> str:
    return os.path.dirname(sys.executable)


def _tool_env(config: AnsibleConfig) -> dict[str, str]:
    env = {**os.environ, **config.envvars}
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
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if res.returncode != 0:
                raise AdapterError(
                    f"could not remove the SSH key of {name} from {known_hosts}: "
                    f"{_cut(res.stderr)}; check that ssh-keygen is installed"
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
# Events


@dataclass
class _Run:
    """State shared by the ansible-runner callbacks of one run (they run on its thread)."""

    hooks: Hooks
    deadline: float
    marker: str
    pid: int | None = None
    start_ticks: int | None = None
    failures: list[HostFailure] = field(default_factory=list)
    unreachable: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    cancelled: bool = False
    timed_out: bool = False
    callback_error: BaseException | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, data: dict[str, Any]) -> bool:
        try:
            self._event(data)
        except Exception as exc:  # a failing hook must not break ansible-runner's loop
            self.callback_error = self.callback_error or exc
        return False  # keep no job events on disk: they carry whole task results

    def found(self, pid: int | None) -> None:
        """Record ansible-playbook's pid (once) and tell the caller."""
        if self.pid is None and pid is not None:
            self.pid = pid
            self.start_ticks = subprocesses.start_ticks(pid)
            self.hooks.spawned(pid)

    def _event(self, data: dict[str, Any]) -> None:
        kind = str(data.get("event", ""))
        ev = data.get("event_data") or {}
        if isinstance(data.get("pid"), int):
            self.found(int(data["pid"]))
        progress = self._progress(kind, ev, data)
        for item in progress:
            self.hooks.report(item)

    def _progress(self, kind: str, ev: dict[str, Any], data: dict[str, Any]) -> list[Progress]:
        host = str(ev.get("host", ""))
        task = _cut(ev.get("task", ""), 200)
        res = ev.get("res") if isinstance(ev.get("res"), dict) else {}
        if kind == "playbook_on_play_start":
            return [Progress(f"play: {_cut(ev.get('play', ''), 200)}", status="play")]
        if kind == "playbook_on_task_start":
            return [Progress(f"task: {task}", task=task, status="started")]
        if kind == "runner_on_ok":
            status = "changed" if res.get("changed") else "ok"
            return [Progress(f"{host}: {task}: {status}", task=task, host=host, status=status)]
        if kind == "runner_on_skipped":
            return [Progress(f"{host}: {task}: skipped", task=task, host=host, status="skipped")]
        if kind in ("runner_on_failed", "runner_on_unreachable"):
            return [self._failure(kind, ev, host, task, res)]
        if kind == "playbook_on_stats":
            return self._recap(ev)
        if kind in ("error", "verbose"):
            self._note_error(str(data.get("stdout", "")))
        return []

    def _failure(
        self, kind: str, ev: dict[str, Any], host: str, task: str, res: dict[str, Any]
    ) -> Progress:
        message = _cut(res.get("msg", "") or "")
        status = "unreachable" if kind == "runner_on_unreachable" else "failed"
        if status == "failed" and ev.get("ignore_errors"):
            text = f"{host}: {task}: failed (ignored)"
            return Progress(text, task=task, host=host, status="ignored")
        self.failures.append(HostFailure(host=host, task=task, message=message))
        (self.unreachable if status == "unreachable" else self.failed).add(host)
        text = f"{host}: {task}: {status}" + (f": {message}" if message else "")
        return Progress(text, task=task, host=host, status=status)

    def _recap(self, ev: dict[str, Any]) -> list[Progress]:
        self.stats = {k: dict(ev.get(k) or {}) for k in _STATS_KEYS}
        hosts = sorted(set().union(*(self.stats[k] for k in _STATS_KEYS)))
        out = []
        for h in hosts:
            counts = {k: self.stats[k].get(h, 0) for k in _STATS_KEYS}
            text = (
                f"recap {h}: ok={counts['ok']} changed={counts['changed']} "
                f"failed={counts['failures']} unreachable={counts['dark']} "
                f"skipped={counts['skipped']}"
            )
            out.append(Progress(text, host=h, status="recap"))
        return out

    def _note_error(self, stdout: str) -> None:
        for line in _ANSI.sub("", stdout).splitlines():
            line = line.strip()
            if line.startswith(("ERROR!", "[ERROR]")) and len(self.errors) < 3:
                self.errors.append(_cut(line, 300))

    def status(self, data: dict[str, Any], runner_config: Any = None) -> None:
        self.statuses.append(str(data.get("status", "")))

    def cancel(self) -> bool:
        """Polled by ansible-runner about once a second: end the tree on cancel or timeout.

        ansible-runner does not tell the pid of the process it spawns; the events carry it, but
        only once Ansible has started. Until then it is found by the run's marker variable.
        A hook that raises stops the run too (ansible-runner would otherwise drop the child).
        """
        with self.lock:
            try:
                if self.pid is None:
                    self.found(subprocesses.child_with_env(_MARKER, self.marker))
                if not self.stopping():
                    return False
            except Exception as exc:
                self.callback_error = self.callback_error or exc
            self.end_tree()
            return True

    def stopping(self) -> bool:
        if self.cancelled or self.timed_out or self.callback_error is not None:
            return True
        if self.hooks.cancelled():
            self.cancelled = True
        elif time.monotonic() > self.deadline:
            self.timed_out = True
        return self.cancelled or self.timed_out

    def end_tree(self) -> None:
        if self.pid is not None:
            subprocesses.kill_tree(self.pid, _KILL_GRACE, start_ticks=self.start_ticks)


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


# Polled once a second for cancellation; no stdout file (it would hold every task's output).
# ansible-runner 2.4 reads settings only from env/settings: a ``settings=`` argument is dropped.
_SETTINGS = {"pexpect_timeout": 1, "suppress_output_file": True}


def _write_env_file(private_dir: str, name: str, data: dict[str, Any]) -> None:
    """Write ``env/<name>`` for ansible-runner (0600). Extravars go there, not onto the command
    line that ``ps`` shows (ansible-runner then passes ``-e @file``)."""
    env_dir = os.path.join(private_dir, "env")
    os.makedirs(env_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(env_dir, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)


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
    import ansible_runner

    _check_inputs(config, playbook, limit)
    os.makedirs(artifact_dir, mode=0o700, exist_ok=True)
    known_hosts = known_hosts or os.path.join(artifact_dir, "known_hosts")
    reset_known_hosts(config, known_hosts, list(known_hosts_reset))
    state = _Run(hooks=hooks, deadline=time.monotonic() + config.timeout, marker=uuid.uuid4().hex)
    hooks.report(Progress(f"playbook {playbook} on {limit}", target=limit, status="started"))
    with tempfile.TemporaryDirectory(prefix="drbot-ansible-") as private_dir:
        _write_env_file(private_dir, "settings", _SETTINGS)
        if config.extravars:
            _write_env_file(private_dir, "extravars", config.extravars)
        try:
            thread, runner = _start(
                ansible_runner,
                private_data_dir=private_dir,
                project_dir=config.project_dir,
                playbook=playbook,
                inventory=config.inventory,
                limit=limit,
                envvars={**_runner_env(config, known_hosts), _MARKER: state.marker},
                artifact_dir=artifact_dir,
                ident=ident,
                quiet=True,
                suppress_env_files=True,
                event_handler=state.event,
                status_handler=state.status,
                cancel_callback=state.cancel,
            )
            thread.join()
        finally:
            state.end_tree()
            with contextlib.suppress(FileNotFoundError):
                # ansible-runner records the command with its whole environment here.
                os.remove(os.path.join(artifact_dir, ident, "command"))
    return _outcome(playbook, limit, state, runner.status, runner.rc)


def _start(ansible_runner: Any, **kwargs: Any) -> tuple[threading.Thread, Any]:
    """``ansible_runner.run_async`` with its own errors (bad inventory path, ...) translated."""
    try:
        return ansible_runner.run_async(**kwargs)  # type: ignore[no-any-return]
    except Exception as exc:
        raise AdapterError(
            f"ansible-runner could not start {kwargs.get('playbook')}: {_cut(exc)}; check "
            "iac.ansible (project path, inventory) in the inventory file"
        ) from exc


def _outcome(
    playbook: str, limit: str, state: _Run, status: str, rc: int | None
) -> PlaybookResult:
    result = PlaybookResult(status=status, rc=rc, stats=state.stats, failures=state.failures)
    what = f"playbook {playbook} on {limit}"
    if state.callback_error is not None:
        raise AdapterError(f"{what} was stopped: reporting its progress failed") from (
            state.callback_error
        )
    if state.timed_out or status == "timeout":
        raise TimedOut(f"{what} did not finish in time and was stopped; hosts may be half done")
    if state.cancelled or status == "canceled":
        raise Cancelled(
            f"{what} was cancelled and its processes ended; hosts may be half configured, "
            "re-run the playbook to finish"
        )
    if status == "successful":
        return result
    if state.failures:
        summary = "; ".join(
            f"{f.host}: task '{f.task}'" + (f": {f.message}" if f.message else "")
            for f in state.failures[:5]
        )
        more = f" and {len(state.failures) - 5} more" if len(state.failures) > 5 else ""
        cls = PlaybookFailed if state.failed else HostsUnreachable
        raise cls(f"{what} failed: {summary}{more}", result)
    detail = "; ".join(state.errors) or "no task failed; check the playbook and the inventory"
    raise PlaybookFailed(f"{what} failed (ansible-playbook exit {rc}): {detail}", result)

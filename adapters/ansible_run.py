"""The process that runs one playbook through ansible-runner: ``python -m adapters.ansible_run``.

``adapters.ansible`` starts it in a session of its own and writes the run's spec to its stdin as
one JSON object. It answers on stdout with JSON lines, one per message::

    {"pid": 1234}                         ansible-playbook started (its pid, to record)
    {"progress": {"message": ..., ...}}   a whitelisted ``Progress``
    {"result": {...}}                     the end: status, rc, stats, failures, errors, flags
    {"error": "..."}                      ansible-runner could not start

Why a process of its own: ansible-runner runs ``ansible-playbook`` under a pty whose master is
held by the process that called it. Were that the worker, a worker that dies would close the pty
and hang the playbook up half way. Here the pty lives as long as the playbook, which therefore
always runs to its end (or to a cancel); the worker records this process's pid, and ``/dr retry``
waits until it has ended. When the worker is gone, writes to stdout fail and are dropped.

SIGINT or SIGTERM is a cancel: the playbook's whole tree is ended (SIGTERM, then SIGKILL after
a grace period) and the result says so. The process is a child subreaper (``prctl``), so what the
playbook started and orphaned (Ansible's async tasks double-fork into sessions of their own) is
adopted here rather than by init: a cancelled or timed-out run ends those too.

Events become ``Progress`` built only from task names, hosts, statuses and counts. Task results
(``res``), environments and command output never leave this process; a failed task contributes
its ``res.msg`` only, truncated. ansible-runner keeps no job events on disk either (the event
handler returns False), since they carry the full results.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from adapters import subprocesses
from adapters.ansible import KILL_GRACE, HostFailure
from adapters.ansible_tasks import Tally
from adapters.progress import Hooks, Progress, one_line

MARKER = "DRBOT_ANSIBLE_RUN"
_MSG_MAX = 300
_PR_SET_CHILD_SUBREAPER = 36
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STATS_KEYS = ("ok", "changed", "failures", "dark", "skipped", "processed", "rescued", "ignored")
# Polled once a second for cancellation; no stdout file (it would hold every task's output).
# ansible-runner 2.4 reads settings only from env/settings: a ``settings=`` argument is dropped.
_SETTINGS = {"pexpect_timeout": 1, "suppress_output_file": True}


class Channel:
    """JSON lines to the worker; once it has gone (a broken pipe), lines are dropped."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gone = False

    def send(self, **message: Any) -> None:
        with self.lock:
            if self.gone:
                return
            try:
                sys.stdout.write(json.dumps(message) + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):
                self.gone = True


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
    cancelled: bool = False
    timed_out: bool = False
    callback_error: BaseException | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    tally: Tally = field(default_factory=Tally)

    def event(self, data: dict[str, Any]) -> bool:
        try:
            self._event(data)
        except Exception as exc:  # a failing hook must not break ansible-runner's loop
            self.callback_error = self.callback_error or exc
        return False  # keep no job events on disk: they carry whole task results

    def planned(self, totals: dict[str, int]) -> None:
        """The listing's totals are known: say so, per host (later lines count against them)."""
        for host, count in sorted(totals.items()):
            self.hooks.report(Progress(f"{host}: {count} tasks to run", host=host,
                                       status="planned"))

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
        for item in self._progress(kind, ev, data):
            self.hooks.report(item)

    def _progress(self, kind: str, ev: dict[str, Any], data: dict[str, Any]) -> list[Progress]:
        host = str(ev.get("host", ""))
        task = one_line(ev.get("task", ""), 200)
        res = ev.get("res") if isinstance(ev.get("res"), dict) else {}
        if kind == "playbook_on_play_start":
            return [Progress(f"play: {one_line(ev.get('play', ''), 200)}", status="play")]
        if kind == "playbook_on_task_start":
            # ansible-runner sends a handler's start as a task start with is_conditional set
            # (display_callback/callback/awx_display.py v2_playbook_on_handler_task_start)
            if ev.get("is_conditional"):
                self.tally.handler(str(ev.get("task_uuid", "")))
            return [Progress(f"task: {task}", task=task, status="started")]
        if kind == "runner_on_ok":
            status = "changed" if res.get("changed") else "ok"
            count = self.tally.finished(host, ev)
            return [Progress(f"{host}: {task}: {status}{count}", task=task, host=host,
                             status=status)]
        if kind == "runner_on_skipped":
            count = self.tally.finished(host, ev)
            return [Progress(f"{host}: {task}: skipped{count}", task=task, host=host,
                             status="skipped")]
        if kind in ("runner_on_failed", "runner_on_unreachable"):
            return [self._failure(kind, ev, host, task, res, self.tally.finished(host, ev))]
        if kind == "playbook_on_stats":
            return self._recap(ev)
        if kind in ("error", "verbose"):
            self._note_error(str(data.get("stdout", "")))
        return []

    def _failure(
        self, kind: str, ev: dict[str, Any], host: str, task: str, res: dict[str, Any],
        count: str = "",
    ) -> Progress:
        message = one_line(res.get("msg", "") or "", _MSG_MAX)
        status = "unreachable" if kind == "runner_on_unreachable" else "failed"
        if status == "failed" and ev.get("ignore_errors"):
            text = f"{host}: {task}: failed (ignored){count}"
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
                self.errors.append(one_line(line, 300))

    def cancel(self) -> bool:
        """Polled by ansible-runner about once a second: end the tree on cancel or timeout.

        ansible-runner does not tell the pid of the process it spawns; the events carry it, but
        only once Ansible has started. Until then it is found by the run's marker variable.
        A hook that raises stops the run too (ansible-runner would otherwise drop the child).
        """
        with self.lock:
            try:
                if self.pid is None:
                    self.found(subprocesses.child_with_env(MARKER, self.marker))
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
            subprocesses.kill_tree(self.pid, KILL_GRACE, start_ticks=self.start_ticks)

    def result(self, status: str, rc: int | None) -> dict[str, Any]:
        return {
            "status": status,
            "rc": rc,
            "stats": self.stats,
            "failures": [asdict(f) for f in self.failures],
            "any_failed": bool(self.failed),
            "errors": self.errors,
            "cancelled": self.cancelled,
            "timed_out": self.timed_out,
            "hook_failed": self.callback_error is not None,
        }


def _write_env_file(private_dir: str, name: str, data: dict[str, Any]) -> None:
    """Write ``env/<name>`` for ansible-runner (0600). Extravars go there, not onto the command
    line that ``ps`` shows (ansible-runner then passes ``-e @file``)."""
    env_dir = os.path.join(private_dir, "env")
    os.makedirs(env_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(env_dir, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)


def _hooks(channel: Channel, stop: threading.Event) -> Hooks:
    def report(item: Progress) -> None:
        channel.send(progress=asdict(item))

    return Hooks(report=report, cancelled=stop.is_set, spawned=lambda pid: channel.send(pid=pid))


def run(spec: dict[str, Any], channel: Channel, stop: threading.Event) -> int:
    """Run the playbook ``spec`` describes; the result goes to ``channel``. Returns the exit code."""
    import ansible_runner

    state = _Run(hooks=_hooks(channel, stop), deadline=time.monotonic() + float(spec["timeout"]),
                 marker=uuid.uuid4().hex)
    artifact_dir, ident = spec["artifact_dir"], spec["ident"]
    with tempfile.TemporaryDirectory(prefix="drbot-ansible-") as private_dir:
        _write_env_file(private_dir, "settings", _SETTINGS)
        extravars = None
        if spec["extravars"]:
            _write_env_file(private_dir, "extravars", spec["extravars"])
            extravars = os.path.join(private_dir, "env", "extravars")
        listing = state.tally.start(spec, extravars, state.planned)  # beside the run
        try:
            thread, runner = ansible_runner.run_async(
                private_data_dir=private_dir, project_dir=spec["project_dir"],
                playbook=spec["playbook"], inventory=spec["inventory"], limit=spec["limit"],
                envvars={**spec["envvars"], MARKER: state.marker}, artifact_dir=artifact_dir,
                ident=ident, quiet=True, suppress_env_files=True, event_handler=state.event,
                cancel_callback=state.cancel)
        except Exception as exc:
            state.tally.stop(listing)
            channel.send(error=one_line(exc, _MSG_MAX))
            return 2
        try:
            while thread.is_alive():  # a timed join lets the signal handlers run
                thread.join(0.5)
        finally:
            state.tally.stop(listing)
            state.end_tree()
            if state.cancelled or state.timed_out:
                # Every descendant, adopted orphans included (tree() never lists this process).
                subprocesses.kill_tree(os.getpid(), KILL_GRACE)
            with contextlib.suppress(FileNotFoundError):
                # ansible-runner records the command with its whole environment here.
                os.remove(os.path.join(artifact_dir, ident, "command"))
    channel.send(result=state.result(runner.status, runner.rc))
    return 0


def _adopt_orphans() -> None:
    """Become a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``); see the module doc."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def main() -> int:
    _adopt_orphans()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # no terminal to lose, but never hang up
    spec = json.loads(sys.stdin.read())
    return run(spec, Channel(), stop)


if __name__ == "__main__":
    sys.exit(main())

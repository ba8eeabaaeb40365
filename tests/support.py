"""Small helpers the tests share: wait on a condition, find a free port, record adapter hooks."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.progress import Hooks, Progress
from lab.servers import WaitTimeout
from lab.servers import wait_until as lab_wait_until


def wait_until(predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy and return its value; fail naming ``what`` (the
    lab's pacing: pauses grow with the time waited, see lab.servers.wait_until)."""
    try:
        return lab_wait_until(predicate, timeout, what)
    except WaitTimeout:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def sync_longhorn_target(custom_objects: Any, timeout: float) -> str:
    """Ask Longhorn's default backup target to sync, as a person would, and wait for a pass that
    began after this call (it read the store as it is now); the pass's stamp.

    Asked for the next whole second, as drbot asks (handlers.restore_set.sync_mark): a request
    for this second can be taken as answered by a pass that began earlier in it."""
    from datetime import UTC, datetime

    from handlers.restore_set import sync_mark
    from lab import world

    asked = sync_mark(datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    where = ("longhorn.io", "v1beta2", world.LONGHORN_NS, "backuptargets", "default")
    custom_objects.patch_namespaced_custom_object(*where, {"spec": {"syncRequestedAt": asked}})

    def synced() -> str | None:
        last = custom_objects.get_namespaced_custom_object(*where)["status"].get("lastSyncedAt")
        return last if (last or "") >= asked else None

    return str(wait_until(synced, timeout, "the backup target synced after the request"))


class FakeClock:
    """time.monotonic and time.sleep for one module under test: sleeping moves the clock, and
    the pauses taken are kept, so a wait's pacing is tested without waiting."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds

    def install(self, monkeypatch: Any, module: Any) -> FakeClock:
        """Replace ``module.time``'s monotonic and sleep with this clock for the test."""
        monkeypatch.setattr(module.time, "monotonic", self.monotonic)
        monkeypatch.setattr(module.time, "sleep", self.sleep)
        return self


def die_with_parent() -> None:
    """A ``preexec_fn``: the child gets SIGTERM when the test process dies, even by SIGKILL
    (Linux's PR_SET_PDEATHSIG). A pytest killed for its time would otherwise leave a drbot
    worker listening on the queue, and it would take the next run's jobs."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the wish was made
        os._exit(1)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


# A deadline for "it stopped on its own": generous for a loaded machine, and far below what waiting
# out the blocked thing would take (sleeps of 300 s, tasks of 1000 s, answers held for 600 s).
PROMPT = 60.0
STOP_DEADLINE = 40.0  # a busy worker's own bound (2 × 1 s grace + 10 s) with room for a loaded box


def _process_table() -> dict[int, tuple[int, str]]:
    """Every process as pid -> (parent pid, state letter), read from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def children(pid: int) -> list[int]:
    """The living (not zombie) processes whose parent is ``pid``."""
    return [child for child, (parent, state) in _process_table().items()
            if parent == pid and state != "Z"]


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (from /proc), children first."""
    parents: dict[int, list[int]] = {}
    for child, (parent, _) in _process_table().items():
        parents.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM,
                 deadline: float = STOP_DEADLINE) -> bool:
    """Stop a process the way production does (``sig``, SIGTERM by default) and, if it has not
    exited by ``deadline``, SIGKILL it and what it started. True when it exited on its own.

    Never raises for a slow process: a test's teardown must go on to stop the others and
    restore what it changed."""
    if proc.poll() is not None:
        return True
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(deadline)
        return True
    except subprocess.TimeoutExpired:
        pass
    for pid in [proc.pid, *descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    return False


class Recorder:
    """Hooks for an adapter call that keep what it reported and spawned."""

    def __init__(self, cancel_when: Callable[[], bool] | None = None) -> None:
        self.progress: list[Progress] = []
        self.pids: list[int] = []
        self.hooks = Hooks(
            report=self.progress.append,
            cancelled=cancel_when or (lambda: False),
            spawned=self.pids.append,
        )

    def text(self) -> str:
        return "\n".join(repr(p) for p in self.progress)


def ansible_syntax_check(playbook: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`ansible-playbook --syntax-check` of ``playbook``, with an inventory holding the groups
    the playbooks name and Ansible's own files under ``tmp_path``."""
    import sys

    import yaml

    hosts = tmp_path / "hosts.yml"
    hosts.write_text(yaml.safe_dump({"all": {"children": {
        "k3s_servers": {"hosts": {"k3s-server-1": {}}},
        "k3s_agents": {"hosts": {"k3s-agent-1": {}}}}}}))
    env = {"PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
           "HOME": str(tmp_path), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "LANG": "C.UTF-8"}
    return subprocess.run(["ansible-playbook", "--syntax-check", "-i", str(hosts), str(playbook)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)

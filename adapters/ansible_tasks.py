"""How many tasks each host has to run, so progress can say "task 4/12" for the host.

ansible-runner's events name each task as it starts, never how many follow; Ansible itself tells
with ``ansible-playbook --list-hosts --list-tasks`` (the same inventory, limit and extra vars),
which prints each play's hosts and tasks (ansible-core lib/ansible/cli/playbook.py,
``PlaybookCLI.run``)::

      play #1 (k3s_servers): install k3s	TAGS: []
        pattern: ['k3s_servers']
        hosts (2):
          s1
          s2
        tasks:
          wait for SSH	TAGS: []
          k3s : install	TAGS: []

The listing runs beside the playbook (it costs an ansible-playbook start, a few seconds), so the
first lines may come without a total. It counts what is known before the run: tasks that a
dynamic ``include_tasks`` adds, notified handlers and fact gathering are not in it, so the
counter leaves handlers and fact gathering out and a total is never shown below what is done.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

FACTS = frozenset({"gather_facts", "ansible.builtin.gather_facts"})  # the implicit task
_HOSTS = re.compile(r"hosts \(\d+\):")


def parse(listing: str) -> dict[str, int]:
    """Tasks per host from ``--list-hosts --list-tasks`` output."""
    totals: dict[str, int] = {}
    hosts: list[str] = []
    tasks = 0
    section = ""

    def flush() -> None:
        for host in hosts:
            totals[host] = totals.get(host, 0) + tasks

    for raw in listing.splitlines():
        line = raw.strip()
        if line.startswith("play #"):
            flush()
            hosts, tasks, section = [], 0, ""
        elif _HOSTS.fullmatch(line):
            section = "hosts"
        elif line == "tasks:":
            section = "tasks"
        elif line.startswith("pattern:") or not line:
            section = "" if line else section
        elif section == "hosts":
            hosts.append(line)
        elif section == "tasks":
            tasks += 1
    flush()
    return totals


def argv(spec: Mapping[str, Any], extravars: str | None, binary: str) -> list[str]:
    """The listing's command line: what ansible-runner runs, plus the two listing flags."""
    args = [binary, "-i", str(spec["inventory"])]
    if spec.get("limit"):
        args += ["--limit", str(spec["limit"])]
    if extravars:
        args += ["-e", f"@{extravars}"]
    return [*args, "--list-hosts", "--list-tasks", str(spec["playbook"])]


@dataclass
class Tally:
    """Tasks done per host against the listed totals (filled in by ``start`` when known)."""

    totals: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    handlers: set[str] = field(default_factory=set)  # task uuids of notified handlers
    process: subprocess.Popen[str] | None = None
    stopped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, task_uuid: str) -> None:
        self.handlers.add(task_uuid)

    def finished(self, host: str, ev: Mapping[str, Any]) -> str:
        """Count one task ended on ``host``; the " (4/12 tasks)" to show, or ""."""
        if ev.get("task_uuid") in self.handlers or ev.get("task_action") in FACTS:
            return ""
        self.done[host] = self.done.get(host, 0) + 1
        total = self.totals.get(host)
        if not total:
            return ""
        return f" ({self.done[host]}/{max(total, self.done[host])} tasks)"

    def start(self, spec: Mapping[str, Any], extravars: str | None,
              known: Callable[[dict[str, int]], None]) -> threading.Thread:
        """List the tasks in the background, with the playbook's own environment and directory;
        ``known`` hears the totals once they are."""
        env = {**os.environ, **spec.get("envvars", {})}
        binary = shutil.which("ansible-playbook", path=env.get("PATH")) or "ansible-playbook"

        def run() -> None:
            try:
                with self.lock:
                    if self.stopped:
                        return
                    self.process = subprocess.Popen(  # noqa: S603  (argv from the run's spec)
                        argv(spec, extravars, binary), cwd=str(spec["project_dir"]), env=env,
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL, text=True)
                out, _ = self.process.communicate()
            except OSError:
                return  # no total: progress goes on without it
            if self.process.returncode == 0:
                self.totals.update(parse(out))
                known(dict(self.totals))

        thread = threading.Thread(target=run, name="ansible-list-tasks", daemon=True)
        thread.start()
        return thread

    def stop(self, thread: threading.Thread) -> None:
        """The run ended: a listing still going is of no use any more."""
        with self.lock:
            self.stopped = True
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
        thread.join()

"""Proxmox tasks: wait on a task's UPID, read its log, and turn a failed task into an error."""

from __future__ import annotations

import re
import time
from collections import deque
from typing import Any

from adapters.errors import AdapterError, Cancelled, Conflict, Refused, TimedOut
from adapters.progress import Hooks, Progress
from adapters.proxmox.client import PveClient
from adapters.proxmox.errors import LOCKED, NO_QUORUM, Op, locked_message, quorum_message

# PVE::Tools::upid_status_is_error: anything but these exit statuses is a failed task.
TASK_OK = re.compile(r"^(OK|WARNINGS: \d+)$")
# Task polling: start fast (most tasks end within a second), back off to POLL_MAX.
POLL_FIRST = 0.05
POLL_MAX = 1.0
# Longest single sleep, so a cancellation is noticed quickly.
CANCEL_CHECK = 0.25
LOG_PAGE = 500


class PveTasks(PveClient):
    """Waiting on PVE tasks; the base of ``adapters.proxmox.vms.Proxmox``."""

    def wait_task(self, node: str, upid: str, timeout: float = 300.0,
                  hooks: Hooks | None = None) -> dict[str, Any]:
        """Wait for a PVE task to end; returns its final status.

        Raises AdapterError (Conflict for a lock, Refused for lost quorum) if the task failed,
        TimedOut after ``timeout`` seconds and Cancelled once ``hooks.cancelled()`` is true; in
        both of those the task itself keeps running in Proxmox.
        """
        return self._wait_task(node, upid, time.monotonic() + timeout, timeout, hooks or Hooks())

    def _wait_task(self, node: str, upid: str, deadline: float, budget: float,
                   hooks: Hooks) -> dict[str, Any]:
        """wait_task until ``deadline``; ``budget`` is the timeout to name in a TimedOut."""
        op = Op(f"read the status of task {upid}", node=node)
        interval = POLL_FIRST
        reported = False
        while True:
            status = self._call("GET", ("nodes", node, "tasks", upid, "status"), op) or {}
            if status.get("status") == "stopped":
                return self._task_result(node, upid, status, hooks)
            if not reported:
                hooks.report(self._task_progress(node, upid, status, "running"))
                reported = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimedOut(f"{self._task_label(node, upid, status)} did not finish within "
                               f"{budget:g}s and may still be running. Look it up with "
                               f"`pvenode task status {upid}` on {node} (or under Tasks in the "
                               "web UI).")
            self._sleep(min(interval, remaining), hooks, self._task_label(node, upid, status),
                        upid)
            interval = min(interval * 2, POLL_MAX)

    def task_log(self, node: str, upid: str, limit: int = 20) -> list[str]:
        """The last ``limit`` lines of a task's log."""
        op = Op(f"read the log of task {upid}", node=node)
        lines: deque[str] = deque(maxlen=max(limit, 0))
        start = 0
        while True:
            page = self._call("GET", ("nodes", node, "tasks", upid, "log"), op, start=start,
                              limit=LOG_PAGE) or []
            lines.extend(str(entry.get("t", "")) for entry in page)
            if len(page) < LOG_PAGE:
                return list(lines)
            start += len(page)

    def _task_result(self, node: str, upid: str, status: dict[str, Any],
                     hooks: Hooks) -> dict[str, Any]:
        exitstatus = str(status.get("exitstatus") or "")
        if TASK_OK.match(exitstatus):
            hooks.report(self._task_progress(node, upid, status, exitstatus))
            return status
        label = self._task_label(node, upid, status)
        vmid = _int_or_none(status.get("id"))
        try:
            tail = self.task_log(node, upid)
        except AdapterError as exc:
            tail = [f"(the task log could not be read: {exc})"]
        log = "\n".join(f"  {line}" for line in tail) or "  (empty)"
        details = f"Task {upid}. Last lines of its log:\n{log}"
        lock = LOCKED.search(exitstatus)
        if lock:
            locked = locked_message(vmid, node, lock.group(1))
            raise Conflict(f"{label} failed: {locked}\n{details}")
        if NO_QUORUM.search(exitstatus):
            raise Refused(f"{label} failed: {quorum_message('run it')}\n{details}")
        raise AdapterError(f"{label} failed with exit status {exitstatus!r}. Read the log below "
                           f"(or `pvenode task log {upid}` on {node}), fix the cause and retry.\n"
                           f"{details}")

    @staticmethod
    def _task_label(node: str, upid: str, status: dict[str, Any]) -> str:
        kind, ident = _upid_fields(upid)
        kind = str(status.get("type") or kind or "task")
        ident = str(status.get("id") or ident or "")
        target = f" for VM {ident}" if ident else ""
        return f"Proxmox task {kind}{target} on node {node}"

    @staticmethod
    def _task_progress(node: str, upid: str, status: dict[str, Any], state: str) -> Progress:
        kind, ident = _upid_fields(upid)
        kind = str(status.get("type") or kind)
        ident = str(status.get("id") or ident)
        return Progress(f"Proxmox task {kind}: {state}", target=f"VM {ident}" if ident else "",
                        task=kind, host=node, status=state)

    @staticmethod
    def _sleep(seconds: float, hooks: Hooks, waiting_for: str, upid: str | None = None) -> None:
        """Sleep in short slices, raising Cancelled as soon as the caller asks."""
        end = time.monotonic() + seconds
        while True:
            if hooks.cancelled():
                look = (f" Check it with `pvenode task status {upid}`." if upid else "")
                raise Cancelled(f"Stopped waiting for {waiting_for} on request. Proxmox was not "
                                f"told to stop it, so it may still be running.{look}")
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, CANCEL_CHECK))


def _upid_fields(upid: str) -> tuple[str, str]:
    """(task type, id) from a UPID, or empty strings when it is not one."""
    parts = upid.split(":")
    if len(parts) >= 8 and parts[0] == "UPID":
        return parts[5], parts[6]
    return "", ""


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

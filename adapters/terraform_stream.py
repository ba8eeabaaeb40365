"""Terraform's machine-readable UI (``-json``, one object per line) read into results and
whitelisted ``Progress`` items (never raw lines, never outputs wholesale; sensitive output values
are dropped), and its error diagnostics into the error a run raises: ``StateLocked`` with who
holds the lock, or the diagnostics' summaries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from adapters.errors import AdapterError, Conflict
from adapters.progress import Hooks, Progress, one_line

LOCK_SUMMARY = "Error acquiring the state lock"
_DETAIL_MAX = 500


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
class UiStream:
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
        if diag.get("detail") and text != LOCK_SUMMARY:
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


def failure(workdir: str, command: str, rc: int, stream: UiStream) -> AdapterError:
    """The error a failed run raises, from the diagnostics its stream carried."""
    for diag in stream.errors():
        if diag.get("summary") == LOCK_SUMMARY:
            lock = parse_lock(str(diag.get("detail", "")))
            return StateLocked(
                f"the Terraform state of {workdir} is locked by {lock.who or 'someone'} "
                f"since {lock.created or 'an unknown time'} (lock ID {lock.id or 'unknown'}, "
                f"operation {lock.operation or 'unknown'}). Wait for that run to finish; if it "
                f"is dead, `terraform force-unlock {lock.id}` releases the lock, and that is a "
                "separate command that needs its own approval",
                lock,
            )
    summaries = [one_line(str(d.get("summary", "")), 200) for d in stream.errors()][:5]
    summaries = summaries or stream.text_errors
    return AdapterError(
        f"terraform {command} in {workdir} failed (exit {rc}): "
        + ("; ".join(summaries) or "no diagnostics; run it by hand to see why")
    )

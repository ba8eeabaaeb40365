"""/dr backups [name]: every backup against policy, worst first; and the scheduler's backup check.

Both run a full check on the worker (which holds the store and cluster credentials): read both
sides, judge, record the findings and any state change (so an alert may follow in the alert
channel). `/dr backups` then renders the report; when a check is already running it shows the
findings of the latest one instead, saying when that was.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from bot.errors import CommandError
from bot.grammar import QUALIFIED, Param
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef
from bot.watch.evaluate import Finding, span

ICONS = {"missed": "✗", "unreadable": "✗", "verify failed": "✗", "drill failed": "✗",
         "archiving failing": "!", "verify overdue": "!", "drill overdue": "!",
         "retention gap": "!", "unknown": "?", "ok": "✓"}
GROUPS = {"longhorn": "Longhorn volumes", "cnpg": "CloudNativePG clusters",
          "etcd": "K3s etcd snapshots (off-node copies)"}


def _check(step: StepContext) -> tuple[list[Finding], dict[str, Any], str]:
    """Run a check now; if one is running, the latest stored findings (and a note saying so)."""
    try:
        outcome = step.records.check_backups()
    except CommandError:
        findings, last = step.records.latest_backup_check()
        if last is None:
            raise
        return findings, last, f"(a check is running; these are from {_at(last)})"
    return outcome.findings, step.records.latest_backup_check()[1] or {}, ""


def _at(last: dict[str, Any]) -> str:
    return datetime.fromtimestamp(float(last["at"]), UTC).strftime("%Y-%m-%d %H:%M UTC")


def sides(last: dict[str, Any]) -> list[str]:
    """'read: …' and 'could not read: …' lines: which side each answer comes from."""
    sights = last.get("sights", {})
    read = [s["what"] for s in sights.values() if s.get("ok")]
    blind = [f"{s['what']} ({s['error']})" for s in sights.values()
             if s.get("configured", True) and not s.get("ok")]
    lines = [f"read: {', '.join(read) or 'nothing'}"]
    if blind:
        lines.append(f"could not read: {'; '.join(blind)}")
    return lines


def row(f: Finding) -> str:
    age = f"last {span(f.age)} ago" if f.age is not None else "no backup"
    keep = f"; retention {f.retention}" if f.retention else ""
    why = f": {f.problem[:110]}" if f.problem and f.status not in ("ok", "missed", "retention gap") \
        else ""
    return (f"  {ICONS[f.status]} {f.label:<28} {f.status:<17} {age} (max {f.max_age_hours:g}h)"
            f"{keep}{verified_short(f.verified)}{why}")


def verified_short(record: dict[str, Any]) -> str:
    """'; verified 2d 3h ago' (the last verified restorable point), or nothing if never."""
    if not record.get("last_ok_at"):
        return ""
    return f"; verified {span(time.time() - float(record['last_ok_at']))} ago"


def verified_lines(record: dict[str, Any]) -> list[str]:
    """The last verified restorable point and the latest verification, for one object."""
    if not record:
        return ["last verified restorable point: never verified (run /dr verify)"]
    lines = []
    if record.get("last_ok_at"):
        point = record.get("last_ok_point") or ""
        lines.append(f"last verified restorable point: backup {record.get('last_ok_backup')}"
                     + (f" (restores to {point})" if point else "")
                     + f", verified {span(time.time() - float(record['last_ok_at']))} ago")
    else:
        lines.append("last verified restorable point: none (no verification passed)")
    when = datetime.fromtimestamp(float(record.get("verified_at") or 0), UTC)
    lines.append(f"latest verification: {record.get('outcome')} at {when:%Y-%m-%d %H:%M} UTC, "
                 f"backup {record.get('backup_id')}, {_mib(record.get('bytes_read'))} read in "
                 f"{float(record.get('duration') or 0):.0f} s"
                 + (f": {record.get('problem')}" if record.get("problem") else ""))
    lines += [f"  checked: {c}" for c in record.get("checked") or []]
    return lines


def _mib(value: Any) -> str:
    return f"{int(value or 0) / (1 << 20):.1f} MiB"


def report(findings: list[Finding], last: dict[str, Any], note: str = "") -> str:
    lines = [f"Backups as of {_at(last)} {note}".rstrip(), *sides(last)]
    for kind, title in GROUPS.items():
        mine = [f for f in findings if f.kind == kind]
        if not mine:
            continue
        counts: dict[str, int] = {}
        for f in mine:
            counts[f.status] = counts.get(f.status, 0) + 1
        tally = ", ".join(f"{n} {s}" for s, n in counts.items())
        lines.append(f"{title} ({len(mine)}: {tally}):")
        lines += [row(f) for f in mine]
    bad = [f for f in findings if f.bad]
    if bad:
        lines.append("To act: " + "; ".join(dict.fromkeys(f.command for f in bad)))
    if not findings:
        lines.append("Nothing to watch: no volumes, clusters or snapshots were found.")
    return "\n".join(lines)


def matches(f: Finding, name: str) -> bool:
    return name in (f.name, f.label, f.label.rpartition("/")[2])


def detail(f: Finding, last: dict[str, Any], note: str = "") -> str:
    lines = [f"{GROUPS[f.kind].rstrip('s').split(' (')[0]} {f.label} ({f.name}) as of {_at(last)} "
             f"{note}".rstrip(),
             f"status: {ICONS[f.status]} {f.status}" + (f": {f.problem}" if f.problem else ""),
             f"policy: every {f.max_age_hours:g}h, keep {f.retention_days} days; "
             f"retention: {f.retention or 'not checked'}",
             f"last good backup: {f.last_good or 'none'}"
             + (f" ({span(f.age)} ago)" if f.age is not None else ""),
             f"answered from: {f.source}",
             *verified_lines(f.verified)]
    lines += [f"note: {n}" for n in f.notes]
    if f.bad:
        lines.append(f"to act: {f.command}")
    lines.append(f"history (newest first, {len(f.history)} shown):")
    for at, name, where, state in f.history:
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M") if at else "?"
        lines.append(f"  {when}  {name:<32} {state:<13} in {where}")
    return "\n".join(lines)


@runbook("backups", summary="backups against policy, worst first; a name shows its history",
         params=(Param("name", "a volume (or namespace/pvc), CNPG cluster or 'etcd'",
                       kind=QUALIFIED, required=False),),
         mutating=False, timeout=900)
def backups(ctx: PlanContext) -> Runbook:
    name = ctx.args.get("name")

    def run(step: StepContext) -> dict[str, Any]:
        findings, last, note = _check(step)
        if not name:
            return {"text": report(findings, last, note)}
        found = [f for f in findings if matches(f, str(name))]
        if not found:
            known = ", ".join(sorted({f.label for f in findings})[:12])
            raise CommandError(f"no watched backup object is called {name!r}; known: {known}")
        return {"text": "\n\n".join(detail(f, last, note) for f in found)}

    return Runbook([StepDef("check backups", run)], targets=[],
                   summary=lambda results: results["check backups"]["text"])


@runbook("backup-check", summary="the scheduled backup check", mutating=False, timeout=1800,
         system=True)
def backup_check(ctx: PlanContext) -> Runbook:
    def run(step: StepContext) -> dict[str, Any]:
        started = time.monotonic()
        outcome = step.records.check_backups()
        return {"text": outcome.summary(), "seconds": round(time.monotonic() - started, 2)}

    return Runbook([StepDef("check backups", run)], targets=[],
                   summary=lambda results: results["check backups"]["text"])

"""The readiness report: for each scenario of the recovery plan, runnable now?, RPO per object
and an RTO estimate, each number with what it is based on and how old; and the timeline picture.

Every source is read once (readonce.py): the cluster through one ReadOnceKube shared by the
backup facts and every preflight, each store once per object as the backup check reads it, the
verification and drill records once each, the job records once each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from adapters.errors import AdapterError
from bot.readiness import rpo, rto, runnable
from bot.readiness.history import runs
from bot.readiness.readonce import ReadingServices
from bot.watch.evaluate import span

if TYPE_CHECKING:
    from bot.readiness.chart import Chart
    from bot.records.jobs import JobStore
    from bot.worker.services import Services

RUNBOOKS = {1: "reconcile", 2: "rebuild-node", 3: "rebuild-host", 4: "rebuild-cluster"}
MIN_DAYS = 14.0
SHOWN = 12  # objects listed by RPO in the text (the picture shows all)


@dataclass
class Scenario:
    verdict: runnable.Verdict
    total: rto.Estimate
    parts: list[rto.Estimate] = field(default_factory=list)


@dataclass
class Report:
    at: float
    scenarios: list[Scenario]
    objects: list[rpo.ObjectRpo]
    notes: list[str]
    chart: Chart | None = None

    @property
    def worst(self) -> rpo.ObjectRpo | None:
        return rpo.worst(self.objects, self.at)

    def text(self) -> str:
        when = datetime.fromtimestamp(self.at, UTC)
        lines = [f"DR readiness as of {when:%Y-%m-%d %H:%M} UTC"]
        for s in self.scenarios:
            v = s.verdict
            lines.append(f"Scenario {v.scenario}, {v.title} ({v.command}):")
            lines += v.render()
            lines.append(f"  RTO {s.total.render()}")
            if len(s.parts) > 1 or s.parts and s.parts[0] is not s.total:
                lines += [f"    {p.render()}" for p in s.parts]
        lines += self.rpo_lines()
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def rpo_lines(self) -> list[str]:
        now = self.at
        lines = [f"RPO per object ({len(self.objects)}; age of the newest backup proven "
                 "restorable by a verification or drill, next to the newest backup at all):"]
        worst = self.worst
        if worst is not None:
            lines.append(f"  worst: {worst.kind} {worst.label}: {rpo_text(worst, now)}")
        ranked = sorted(self.objects, key=lambda o: (o.proven_age(now) is None,
                                                     o.proven_age(now) or 0.0), reverse=True)
        lines += [f"  {o.kind} {o.label}: {rpo_text(o, now)}" for o in ranked[:SHOWN]]
        if len(ranked) > SHOWN:
            lines.append(f"  … and {len(ranked) - SHOWN} more (the picture shows every object)")
        return lines


def rpo_text(o: rpo.ObjectRpo, now: float) -> str:
    newest = o.newest_age(now)
    newest_text = f"newest backup {span(newest)} old" if newest is not None else "no backup"
    if o.proven is None or o.proven.at is None:
        proven_text = "never proven restorable"
    else:
        proven_text = (f"proven {span(o.proven_age(now))} old (backup {o.proven.backup}, "
                       f"{o.proven.how})")
    failed = "; ".join(p.latest_failed for p in o.proofs if p.latest_failed)
    return f"{proven_text}; {newest_text}" + (f"; {failed}" if failed else "")


def volume_sizes(services: ReadingServices) -> dict[str, tuple[str, int]]:
    """volume name -> (namespace/pvc or the name, bytes), from the one volume listing."""
    from adapters.kubernetes import longhorn

    out = {}
    for v in longhorn.list_volumes(services.kube):  # type: ignore[arg-type]
        try:
            size = int(v.size or 0)
        except ValueError:
            size = 0
        out[v.name] = (f"{v.pvc_namespace}/{v.pvc}" if v.pvc else v.name, size)
    return out


def build(services: Services, jobs: JobStore, progress: Callable[[str], None] = lambda _: None,
          now: float | None = None) -> Report:
    from bot.watch.facts import collect

    now = now or time.time()
    view = ReadingServices(services)
    inventory = services.inventory
    progress("reading the backups (cluster and stores)")
    facts = collect(view, inventory, datetime.fromtimestamp(now, UTC))  # type: ignore[arg-type]
    verified, drilled = services.verifications.load(), services.drills.load()
    objects = [rpo.of_object(o, verified, drilled) for o in facts.objects]
    progress("evaluating each runbook's preflight")
    lines = runnable.doctor_lines(view, inventory)
    s1 = runnable.scenario_1(view, inventory)
    s2 = runnable.scenario_2(view, inventory, lines)
    s3, lost = runnable.scenario_3(view, inventory, lines)
    s4 = runnable.scenario_4(view, inventory, lines, facts)
    history = runs(jobs, set(RUNBOOKS.values()))
    notes = []
    try:
        sizes = volume_sizes(view)
    except AdapterError as exc:
        sizes, notes = {}, [f"volume sizes unknown (the cluster cannot be read: {exc})"]
    rate = rto.restore_rate(drilled, verified, now)
    by_pvc = {pvc: size for pvc, size in sizes.values()}
    scenarios = []
    for verdict in (s1, s2, s3, s4):
        command = RUNBOOKS[verdict.scenario]
        measured = rto.from_runs(f"/dr {command}", command, history[command], now)
        parts = [measured]
        if verdict.scenario == 3 and not history[command]:
            worst_host = max(lost.items(), key=lambda kv: len(kv[1]), default=("", []))
            parts.append(rto.restores(f"restores of what {worst_host[0] or 'a host'} takes "
                                      "along", [(p, by_pvc.get(p, 0)) for p in worst_host[1]],
                                      drilled, rate, inventory))
        if verdict.scenario == 4 and not history[command]:
            parts.append(rto.restores("restore every Longhorn volume", sorted(sizes.values()),
                                      drilled, rate, inventory))
            parts.append(rto.cnpg_recovery(verified, sum(1 for o in facts.objects
                                                         if o.kind == "cnpg"), now))
        total = rto.total(parts) if len(parts) > 1 else parts[0]
        scenarios.append(Scenario(verdict, total, parts))
    notes.append("not checked here: SSH to each node and the playbooks' syntax (/dr doctor)")
    report = Report(now, scenarios, objects, notes)
    progress("drawing the backup timeline")
    report.chart = picture(report, inventory)
    return report


def picture(report: Report, inventory: Any) -> Chart:
    from bot.readiness.chart import draw

    policies = inventory.backups
    windows = {kind: float(getattr(policies, kind).retention_days)
               for kind in ("longhorn", "cnpg", "etcd")}
    days = max(MIN_DAYS, 2 * max(windows.values()))
    ordered = sorted(report.objects, key=lambda o: (o.kind, o.label))
    when = datetime.fromtimestamp(report.at, UTC)
    return draw(ordered, windows, report.at, days, f"Backups as of {when:%Y-%m-%d %H:%M} UTC")


def run(services: Services, progress: Callable[[str], None] = lambda _: None) -> Report:
    """The worker's run (`/dr readiness`, the weekly readiness-report, `drbot readiness`)."""
    from bot.records.jobs import JobStore
    from bot.records.signing import Signer
    from bot.runtime import connect

    jobs = JobStore(connect(services.settings, patient=True), Signer(services.settings.key()))
    return build(services, jobs, progress)


def post(services: Services, report: Report, job_id: str) -> None:
    """The weekly post: the report (and its picture) into the `alerts:` channels, as a message of
    its own (an event of type "report" on the alert stream, signed like every alert)."""
    from bot.records import files
    from bot.records.signing import Signer
    from bot.runtime import connect
    from bot.watch.alert_states import EVENTS, STREAM_LENGTH, AlertEvent

    client = connect(services.settings, patient=True)
    event = AlertEvent(f"readiness:{job_id}", "report", report.text())
    if report.chart is not None:
        sha = files.put(client, job_id, report.chart.png)
        event.file = f"{job_id}:{sha}:{picture_name(report)}"
    client.xadd(EVENTS, event.sealed(Signer(services.settings.key())),  # type: ignore[arg-type]
                maxlen=STREAM_LENGTH, approximate=True)


def picture_name(report: Report) -> str:
    return f"readiness-{datetime.fromtimestamp(report.at, UTC):%Y%m%d-%H%M}.png"


def caption(report: Report) -> str:
    rows = len(report.chart.rows) if report.chart else 0
    return (f"Backup timeline, {rows} objects (grey taken, green verified, blue drilled, red "
            "failed; shaded: the policy's retention window)")

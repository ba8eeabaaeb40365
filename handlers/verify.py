"""/dr verify longhorn|cnpg|etcd [name] [--backup ID] [--deep], /dr verify all; and the rotation.

Proves backups restorable from the object store alone, on the worker, with the real tools of each
format (adapters/verify): nothing in the cluster is read, so it works when the cluster is gone
(scenario 4). The name selects an object found in the store (a Longhorn volume, a CNPG server);
etcd verifies the newest off-node snapshot. Each result is kept per object (bot/watch/verified.py)
for /dr backups, the metrics and the watch's alerts.

``verify-next`` is the scheduled rotation: it verifies the one object whose last verification is
oldest (never verified first), newest backup, when it is due under ``backups.verify_every`` and
today's bandwidth budget allows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.config.inventory import Inventory
from bot.errors import CommandError
from bot.grammar import Param, ValueKind
from bot.records.locks import LockKey, exclusive
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef

TARGET = ValueKind("verify target", re.compile(r"longhorn|cnpg|etcd|all"), "longhorn")
OBJECT = ValueKind("name", re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/)?"
                                 r"[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?"), "apps/web-data")
BACKUP_ID = ValueKind("backup id", re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}"),
                 "backup-3f9c2a1b4d5e6f70")
KINDS = ("longhorn", "cnpg", "etcd")
TIMEOUT = 4 * 3600
GIB, MB = 1 << 30, 1_000_000


def locks(args: dict[str, Any], inventory: Inventory) -> list[LockKey]:
    """One verification at a time: they share scratch space and the store's bandwidth."""
    return [exclusive("verify")]


# --- which objects exist in the store -----------------------------------------------------------

def objects(ctx: PlanContext | StepContext, kind: str) -> list[str]:
    from adapters import backupstore as bs

    store = ctx.services.store(kind)
    if kind == "longhorn":
        return bs.longhorn_volume_names(store)
    if kind == "cnpg":
        return bs.barman_servers(store, "")
    return ["etcd"] if bs.etcd_snapshots(store) else []


def _configured(inventory: Inventory) -> list[str]:
    return [k for k in KINDS if getattr(inventory.backups, f"{k}_store") is not None]


def targets(ctx: PlanContext) -> list[tuple[str, str, str]]:
    """(kind, name in the store, how people know it) of each object to verify."""
    return [(k, n, label or n) for k, n, label in _targets(ctx)]


def _targets(ctx: PlanContext) -> list[tuple[str, str, str]]:
    kind, name = str(ctx.args["kind"]), ctx.args.get("name")
    if kind == "all":
        if name or ctx.args.get("backup"):
            raise CommandError("/dr verify all takes no name or --backup: it verifies the newest "
                               "backup of every object")
        found = [(k, n, "") for k in _configured(ctx.inventory) for n in objects(ctx, k)]
        if not found:
            raise CommandError("nothing to verify: no backups found in the configured stores")
        return found
    if kind == "etcd":
        if name not in (None, "etcd"):
            raise CommandError("/dr verify etcd takes no name (it verifies the newest off-node "
                               "snapshot); name a snapshot with --backup")
        return [("etcd", "etcd", "off-node snapshots")]
    if ctx.args.get("deep") and kind != "longhorn":
        raise CommandError("--deep applies to Longhorn only")
    if not name:
        raise CommandError(f"/dr verify {kind} needs a name: /dr verify {kind} <name> "
                           "(or /dr verify all)")
    known = objects(ctx, kind)
    if name in known:
        return [(kind, str(name), "")]
    if kind == "longhorn":  # people know volumes by their PVC: namespace/pvc or a unique pvc
        by_pvc = pvcs(ctx, known)
        matches = [v for p, v in by_pvc.items() if name in (p, p.rpartition("/")[2])]
        if len(matches) == 1:
            return [(kind, matches[0], f"{name} ({matches[0]})")]
        if matches:
            raise CommandError(f"{name!r} matches {len(matches)} volumes; give namespace/pvc")
        known = sorted(by_pvc) or known
    listed = ", ".join(known[:12]) or "none"
    raise CommandError(f"no {kind} backups named {name!r} in the store; known: {listed}")


def pvcs(ctx: PlanContext, volumes: list[str]) -> dict[str, str]:
    """``namespace/pvc`` -> volume, from each volume's last backup (read from the store)."""
    from adapters.verify import longhorn as lv

    store = ctx.services.store("longhorn")
    found = {lv.pvc_of(store, "", v): v for v in volumes}
    found.pop("", None)
    return found


# --- running one verification -------------------------------------------------------------------

def verify_one(step: StepContext, kind: str, name: str, backup: str | None, deep: bool) -> Any:
    """Run the adapter for one object and keep its result; returns the Verification."""
    from adapters.verify import cnpg as cv
    from adapters.verify import etcd as ev
    from adapters.verify import longhorn as lv
    from adapters.verify.scratch import ScratchConfig, sweep

    cfg = step.inventory.backups.verify
    scratch = ScratchConfig(cfg.scratch_dir, int(cfg.scratch_max_gb * GIB))
    sweep(cfg.scratch_dir)
    store = step.services.store(kind)
    if kind == "longhorn":
        result = lv.verify(store, "", name, backup, deep=deep, scratch=scratch, hooks=step.hooks,
                           workers=cfg.longhorn_workers, max_rate=int(cfg.max_mb_per_second * MB))
    elif kind == "cnpg":
        tools = cv.PostgresTools(cfg.postgres_bin_dir, cfg.barman_dir, cfg.postgres_user)
        checks = [cv.SqlCheck(c.name, c.query, c.database, c.expect,
                              int(c.max_age_hours * 3600) if c.max_age_hours else None)
                  for c in cfg.cnpg_checks.get(name, [])] or list(cv.DEFAULT_CHECKS)
        result = cv.verify(store, name, backup, tools=tools, checks=checks, scratch=scratch,
                           hooks=step.hooks, timeout=cfg.recovery_timeout_seconds)
    else:
        result = ev.verify(store, "", backup, tools=ev.EtcdTools.find(cfg.etcd_bin_dir),
                           scratch=scratch, hooks=step.hooks,
                           expect_nodes=list(step.inventory.nodes))
    step.services.verifications.record(result, key=f"{kind}:{name}")
    step.progress(result.summary(), target=f"{kind} {name}",
                  status="ok" if result.ok else "failed")
    return result


def outcome(result: Any) -> dict[str, Any]:
    return {"kind": str(result.kind), "name": result.name, "backup": result.backup_id,
            "ok": result.ok, "text": result.summary(), "bytes": result.bytes_read,
            "seconds": round(result.duration, 1)}


def _step(kind: str, name: str, backup: str | None, deep: bool, raise_on_failure: bool
          ) -> Callable[[StepContext], dict[str, Any]]:
    def run(step: StepContext) -> dict[str, Any]:
        from adapters.errors import AdapterError, Cancelled

        try:
            result = verify_one(step, kind, name, backup, deep)
        except Cancelled:
            raise
        except AdapterError as exc:
            if raise_on_failure:
                raise
            # /dr verify all goes on with the next object; the report step names this one
            return {"ok": False, "text": f"{kind} {name}: could not verify: {exc}"}
        if raise_on_failure and not result.ok:
            raise CommandError(result.summary())
        return outcome(result)
    return run


def _report(results: dict[str, dict[str, Any]]) -> str:
    rows = [r for r in results.values() if "ok" in r]
    failed = [r for r in rows if not r["ok"]]
    head = f"verified {len(rows)} backup(s): {len(rows) - len(failed)} restorable"
    head += f", {len(failed)} FAILED" if failed else ""
    return "\n".join([head, *(f"  {'✓' if r['ok'] else '✗'} {r['text']}" for r in rows)])


@runbook("verify", summary="prove backups restorable from the object store alone",
         params=(Param("kind", "longhorn, cnpg, etcd or all", kind=TARGET),
                 Param("name", "the Longhorn volume or CNPG server in the store", kind=OBJECT,
                       required=False),
                 Param("backup", "a backup id (default: the newest)", kind=BACKUP_ID, flag=True,
                       required=False),
                 Param("deep", "Longhorn: also assemble the volume image and fsck it",
                       flag=True, boolean=True, required=False)),
         mutating=False, locks=locks, timeout=TIMEOUT)
def verify(ctx: PlanContext) -> Runbook:
    found = targets(ctx)
    backup = ctx.args.get("backup")
    deep = bool(ctx.args.get("deep"))
    single = len(found) == 1 and ctx.args["kind"] != "all"
    steps = [StepDef(f"verify {kind} {name}", _step(kind, name, str(backup) if backup else None,
                                                    deep and kind == "longhorn", single),
                     target=f"{kind} {label}", describe="read-only: from the object store")
             for kind, name, label in found]
    if not single:
        steps.append(StepDef("report", _final))
    return Runbook(steps, targets=[s.target for s in steps if s.target],
                   notes=["reads the object store only; restored data goes to scratch space "
                          "and is removed afterwards"],
                   summary=_report)


def _final(step: StepContext) -> dict[str, Any]:
    failed = [r["text"] for r in step.results.values() if "ok" in r and not r["ok"]]
    if failed:
        raise CommandError(f"{len(failed)} backup(s) failed or could not be verified: "
                           + "; ".join(failed))
    return {}


# --- the rotation -------------------------------------------------------------------------------

def due(inventory: Inventory, found: list[tuple[str, str]], records: dict[str, Any],
        now: datetime) -> tuple[str, str] | None:
    """The object to verify next: never verified first, then the oldest verification, if that
    is older than ``verify_every`` days (a failed one is retried after a quarter of that)."""
    every = inventory.backups.verify_every * 86400
    if every <= 0:
        return None
    best: tuple[float, tuple[str, str]] | None = None
    for kind, name in found:
        rec = records.get(f"{kind}:{name}")
        last = -1.0 if rec is None else rec.verified_at
        wait = every if rec is None or rec.ok else every / 4
        if rec is not None and now.timestamp() - last < wait:
            continue
        if best is None or last < best[0]:
            best = (last, (kind, name))
    return best[1] if best else None


@runbook("verify-next", summary="the scheduled verification rotation", mutating=False,
         locks=locks, timeout=TIMEOUT, system=True)
def verify_next(ctx: PlanContext) -> Runbook:
    def run(step: StepContext) -> dict[str, Any]:
        records = step.services.verifications
        cfg = step.inventory.backups.verify
        budget = int(cfg.daily_budget_gb * GIB)
        if budget and records.spent() >= budget:
            return {"text": f"today's verification budget ({cfg.daily_budget_gb:g} GB) is used"}
        found = [(k, n) for k in _configured(step.inventory) for n in objects(step, k)]
        pick = due(step.inventory, found, records.load(), datetime.now(UTC))
        if pick is None:
            return {"text": "no verification is due"}
        kind, name = pick
        result = verify_one(step, kind, name, None, cfg.deep and kind == "longhorn")
        records.spend(result.bytes_read)
        return outcome(result)

    return Runbook([StepDef("verify the most overdue object", run)], targets=[],
                   summary=lambda r: r["verify the most overdue object"]["text"])

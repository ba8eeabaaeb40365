"""/dr drill longhorn <namespace/pvc> and /dr drill cnpg <namespace/cluster>: the restore path
proven inside the cluster; the rotation (``drill-next``) and the sweeper (``drill-sweep``).
The CNPG drill (a recovery Cluster and SQL through the exec API) is in handlers/drill_cnpg.py;
both share the namespace, the cleanup, the locks and the record described here.

A drill restores the PVC's newest completed backup the way /dr restore does (a Longhorn volume
from the Backup's ``status.url``, a static PV, a PVC), but into a namespace of its own,
``drbot-drill-<job>``, labelled for the sweeper; a pod mounts the restored claim read-only and
runs the inventory's checks (default: count the files and read every byte); the restore time and
what the checks found are reported and kept per object (bot/watch/drilled.py); then the
namespace, the PV and the volume are deleted. The source PVC, its volume and its Kustomization
are only read.

Cleanup is guaranteed in layers: the drill step removes everything it made when it ends, fails or
is cancelled; its namespace is recorded in the job (``StepContext.intent``) before it is created,
so a retry removes the earlier attempt's objects first; and when the worker dies, the sweeper
(enqueued by the reaper and by the scheduler) deletes every drill namespace whose job is over or
whose deadline has passed.

Locks: a drill takes ``shared("drill")`` and needs ``cluster`` free (no recovery runs); the
rebuilds need ``drill`` free, so a rebuild asked for during a drill is refused and names the drill
(cancel it, or wait: a drill is bounded by ``backups.drill.timeout_minutes``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from adapters.progress import Hooks
from bot.config.inventory import DrillCheck, Inventory
from bot.errors import CommandError
from bot.grammar import QUALIFIED, Param, ValueKind
from bot.records.locks import LockKey, exclusive, free, shared
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef
from handlers import drill_cnpg
from handlers import restore as restore_cmd

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from adapters.kubernetes.drills import CheckResult, DrillResult
    from adapters.kubernetes.longhorn.backups import Backup

DRILL_KIND = ValueKind("drill kind", re.compile(r"longhorn|cnpg"), "longhorn or cnpg")
TIMEOUT = 6 * 3600  # the job's ceiling; the drill's own bound is backups.drill.timeout_minutes
CLEANUP_TIMEOUT = 300.0
POLL = 1.0
CLAIM = "restored"
DEFAULT_CHECK = "files and bytes"


def locks(args: dict[str, Any], inventory: Inventory) -> list[LockKey]:
    keys = [free("cluster"), shared("drill")]
    if args.get("target"):
        keys.append(exclusive(f"drill:{args.get('kind', 'longhorn')}:{args['target']}"))
    return keys


# ---- what to drill -----------------------------------------------------------------------------

def default_check(mount_path: str) -> DrillCheck:
    """Count the files and read every byte of them (a file that cannot be read fails it). The
    mount path is passed as an argument ($0), never spliced into the script."""
    script = ('find "$0" -xdev -type f | wc -l; '
              'find "$0" -xdev -type f -exec cat {} + | wc -c')
    return DrillCheck(name=DEFAULT_CHECK, command=["sh", "-c", script, mount_path])


def checks_for(inventory: Inventory, target: str) -> list[DrillCheck]:
    cfg = inventory.backups.drill
    return list(cfg.longhorn_checks.get(target, [])) or [default_check(cfg.mount_path)]


def choose(kube: Kube, target: str) -> tuple[str, Backup]:
    """The source volume and its newest completed backup (refused, saying why, otherwise)."""
    ns, name = restore_cmd.split(target)
    volume = restore_cmd.find_volume(kube, ns, name)
    return volume, restore_cmd.choose_backup(kube, volume, target, None)


def room(kube: Kube, inventory: Inventory, size: int) -> None:
    """Refuse when Longhorn has no room for the restored replicas or no node can run the pod."""
    from adapters.kubernetes import drills, nodes

    replicas = inventory.backups.drill.replicas
    fits = drills.nodes_with_room(kube, size)
    if len(fits) < replicas:
        raise CommandError(
            f"Longhorn lacks schedulable storage for the drill: a {size / 2**30:.1f} GiB replica "
            f"fits on {len(fits)} node(s) ({', '.join(fits) or 'none'}), {replicas} needed. Free "
            "space, lower backups.drill.replicas, or drill a smaller volume")
    runnable = [n.name for n in nodes.list_nodes(kube) if n.ready and not n.unschedulable]
    if not runnable:
        raise CommandError("no node can run the drill's pod: none is Ready and schedulable")


def shape_of(kube: Kube, backup: Backup) -> Any:
    from adapters.errors import Refused
    from adapters.kubernetes import longhorn

    try:
        return longhorn.recorded_shape(kube, backup)
    except Refused as exc:
        raise CommandError(str(exc)) from None


# ---- the drill ---------------------------------------------------------------------------------

def evaluate(check: DrillCheck, code: int, output: str) -> CheckResult:
    """What one check found: the default check's files and bytes, else the expected value."""
    from adapters.kubernetes.drills import CheckResult

    text = output.strip()
    if code != 0:
        return CheckResult(check.name, False, f"exit status {code}: {text[-300:] or 'no output'}")
    if check.name == DEFAULT_CHECK and check.expect is None:
        counts = text.split()
        if len(counts) != 2 or not all(c.isdigit() for c in counts):
            return CheckResult(check.name, False, f"unexpected output: {text[-200:]!r}")
        return CheckResult(check.name, True, f"{counts[0]} files, {counts[1]} bytes read")
    if check.expect is not None and text != check.expect.strip():
        return CheckResult(check.name, False,
                           f"expected {check.expect.strip()[:200]!r}, got {text[-200:]!r}")
    return CheckResult(check.name, True, text[-200:] or "exit status 0")


def run_check(step: StepContext, namespace: str, index: int, check: DrillCheck,
              deadline: float) -> CheckResult:
    from adapters.kubernetes import drills
    from adapters.kubernetes._wait import wait_for

    kube, cfg = step.services.kube, step.inventory.backups.drill
    pod = f"{drills.POD}-{index}"
    drills.start_check(kube, namespace, CLAIM, image=cfg.image, command=list(check.command),
                       mount_path=cfg.mount_path, name=pod)
    step.progress(f"check {check.name}: pod {namespace}/{pod} started", target=namespace)
    timeout = max(1.0, min(float(cfg.pod_timeout_seconds), deadline - time.time()))
    outcome = wait_for(lambda: drills.check_outcome(kube, namespace, pod), timeout=timeout,
                       poll=POLL, hooks=step.hooks,
                       timeout_message=lambda err: f"check {check.name}: pod {namespace}/{pod} "
                       f"did not finish within {timeout:.0f}s",
                       cancel_message="drill cancelled")
    return evaluate(check, outcome.exit_code, outcome.output)


def cleanup(kube: Kube, namespace: str, hooks: Hooks | None = None) -> list[str]:
    """Delete the drill's namespace, PV and Longhorn volume and wait until the namespace is gone.
    Runs on its own hooks: a cancelled drill must still be cleaned up."""
    from adapters.kubernetes import drills
    from adapters.kubernetes._wait import wait_for

    asked = drills.delete_namespace(kube, namespace)
    wait_for(lambda: True if drills.get_namespace(kube, namespace) is None else None,
             timeout=CLEANUP_TIMEOUT, poll=POLL, hooks=hooks or Hooks(),
             timeout_message=lambda err: f"drill namespace {namespace} is still terminating; "
             "the sweeper removes it later",
             cancel_message="stopped waiting for the drill namespace to go")
    return ([f"namespace {namespace}"] if asked else []) + drills.delete_restore(kube, namespace)


def drill_longhorn(step: StepContext, target: str) -> DrillResult:
    from adapters.kubernetes import drills, longhorn
    from adapters.kubernetes.drills import DrillResult

    kube, cfg = step.services.kube, step.inventory.backups.drill
    volume, backup = choose(kube, target)
    namespace = drills.namespace_for(step.job_id)
    # Recorded before the namespace exists: a retry (or the report) knows what to remove.
    plan = step.intent("drill", lambda: {"namespace": namespace, "backup": backup.name})
    namespace = str(plan["namespace"])
    if plan["backup"] != backup.name:
        backup = longhorn.get_backup(kube, plan["backup"])
    if step.resumed("drill"):
        step.progress(f"removing what the earlier attempt left in {namespace}", target=target)
        cleanup(kube, namespace)
    shape = shape_of(kube, backup)
    started = time.time()
    deadline = started + cfg.timeout_minutes * 60
    result = DrillResult("longhorn", target, backup.name, started, size=int(shape.size))
    with contained(step, kube, namespace, result):
        # No room is a failed drill, kept as such: a restore of this volume would fail too.
        room(kube, step.inventory, int(shape.size))
        drills.create_namespace(kube, namespace, job=step.job_id, target=f"longhorn {target}",
                                deadline=deadline)
        step.progress(f"restoring backup {backup.name} of {volume} into {namespace}/{CLAIM}",
                      target=target)
        longhorn.restore_backup(kube, backup.name, CLAIM, namespace, step.hooks,
                                max(1.0, deadline - time.time()), volume_name=namespace,
                                shape=shape, replicas=cfg.replicas, poll=POLL)
        result.restore_seconds = time.time() - started
        step.progress(f"restored in {result.restore_seconds:.1f}s; running the checks",
                      target=target)
        for index, check in enumerate(checks_for(step.inventory, target)):
            result.checks.append(run_check(step, namespace, index, check, deadline))
    return result


@contextmanager
def contained(step: StepContext, kube: Kube, namespace: str, result: DrillResult
              ) -> Iterator[None]:
    """The body of a drill of any kind: an outside system's refusal or a command error fails
    the drill (kept in its result, not raised), a cancel goes on up, and whatever happens the
    drill namespace is removed; what could not be is added to the problem."""
    from adapters.errors import AdapterError, Cancelled

    try:
        yield
    except Cancelled:
        raise
    except (AdapterError, CommandError) as exc:
        result.problem = str(exc)
    finally:
        result.duration = time.time() - result.started_at
        left = cleanup_quietly(step, kube, namespace)
        if left:
            result.problem = "; ".join(filter(None, [result.problem, left]))


def cleanup_quietly(step: StepContext, kube: Kube, namespace: str) -> str:
    """Clean up and say what could not be (the sweeper retries it); never raises."""
    from adapters.errors import AdapterError

    try:
        removed = cleanup(kube, namespace)
    except AdapterError as exc:
        return f"cleanup incomplete ({exc}); the sweeper removes the rest"
    step.progress("removed " + (", ".join(removed) or "nothing (already gone)"),
                  target=namespace)
    return ""


def outcome(result: DrillResult) -> dict[str, Any]:
    return {"kind": result.kind, "name": result.name, "backup": result.backup_id,
            "ok": result.ok, "text": result.summary(),
            "restore_seconds": None if result.restore_seconds is None
            else round(result.restore_seconds, 1), "seconds": round(result.duration, 1)}


def _drill_step(kind: str, target: str) -> Any:
    def run(step: StepContext) -> dict[str, Any]:
        result = (drill_cnpg.drill_cnpg if kind == "cnpg" else drill_longhorn)(step, target)
        step.services.drills.record(result)
        step.progress(result.summary(), target=f"{kind} {target}",
                      status="ok" if result.ok else "failed")
        if not result.ok:
            raise CommandError(result.summary())
        return outcome(result)
    return run


@runbook("drill", summary="restore a backup inside the cluster, in a throwaway namespace, and "
         "check it", params=(Param("kind", "what to drill: longhorn or cnpg", kind=DRILL_KIND),
                             Param("target", "the PVC (namespace/pvc) or the CNPG cluster "
                                   "(namespace/cluster)", kind=QUALIFIED)),
         locks=locks, timeout=TIMEOUT)
def drill(ctx: PlanContext) -> Runbook:
    target = str(ctx.args["target"])
    if ctx.args.get("kind") == "cnpg":
        return _cnpg_plan(ctx, target)
    kube = ctx.services.kube
    volume, backup = choose(kube, target)
    room(kube, ctx.inventory, int(shape_of(kube, backup).size))
    checks = ", ".join(c.name for c in checks_for(ctx.inventory, target))
    step = StepDef("drill", _drill_step("longhorn", target), target=f"longhorn {target}",
                   describe=f"restore backup {backup.name} of {volume} into a drill namespace, "
                   f"check it ({checks}), delete it")
    return Runbook([step], targets=[step.target],
                   notes=["the source PVC, its volume and its Kustomization are only read"],
                   summary=lambda r: str(r["drill"]["text"]))


def _cnpg_plan(ctx: PlanContext, target: str) -> Runbook:
    line = drill_cnpg.describe(ctx.services.kube, ctx.inventory, target)
    step = StepDef("drill", _drill_step("cnpg", target), target=f"cnpg {target}", describe=line)
    return Runbook([step], targets=[step.target],
                   notes=["the source Cluster, its Secrets and its object store are only read; "
                          "the drill Cluster has no backup or plugins section: it archives "
                          "nowhere"],
                   summary=lambda r: str(r["drill"]["text"]))


# ---- the rotation ------------------------------------------------------------------------------

def due(found: list[str], records: dict[str, Any], every_days: float, now: datetime
        ) -> str | None:
    """The object to drill next, of ``found`` (record keys ``kind:namespace/name``; a bare
    ``namespace/pvc`` is a Longhorn one): never drilled first, then the oldest drill, once it is
    older than ``every_days`` (a failed one is tried again after a quarter of that)."""
    every = every_days * 86400
    if every <= 0:
        return None
    best: tuple[float, str] | None = None
    for target in found:
        rec = records.get(target if ":" in target else f"longhorn:{target}")
        last = -1.0 if rec is None else rec.drilled_at
        wait = every if rec is None or rec.ok else every / 4
        if rec is not None and now.timestamp() - last < wait:
            continue
        if best is None or last < best[0]:
            best = (last, target)
    return best[1] if best else None


def drillable(kube: Kube) -> list[str]:
    """namespace/pvc of every Longhorn volume that has a completed backup recording its PVC."""
    from adapters.kubernetes import longhorn

    return sorted({f"{b.pvc_namespace}/{b.pvc}" for b in longhorn.list_backups(kube)
                   if b.state == "Completed" and b.pvc and b.pvc_namespace})


def everything_drillable(kube: Kube) -> list[str]:
    """Record keys of every object a drill can prove: Longhorn PVCs and CNPG clusters."""
    return ([f"longhorn:{t}" for t in drillable(kube)]
            + [f"cnpg:{t}" for t in drill_cnpg.drillable(kube)])


@runbook("drill-next", summary="the scheduled drill rotation", locks=lambda a, i: [
    free("cluster"), shared("drill")], timeout=TIMEOUT, system=True)
def drill_next(ctx: PlanContext) -> Runbook:
    def run(step: StepContext) -> dict[str, Any]:
        pick = due(everything_drillable(step.services.kube), step.services.drills.load(),
                   step.inventory.backups.drill_every, datetime.now(UTC))
        if pick is None:
            return {"text": "no drill is due"}
        kind, _, target = pick.partition(":")
        return _drill_step(kind, target)(step)

    return Runbook([StepDef("drill the most overdue object", run)], targets=[],
                   summary=lambda r: str(r["drill the most overdue object"]["text"]))


# ---- the sweeper -------------------------------------------------------------------------------

def sweep(step: StepContext) -> dict[str, Any]:
    """Delete every drill namespace whose job is over or whose deadline passed, with its PV and
    Longhorn volume, and the drill volumes whose namespace is already gone."""
    from adapters.kubernetes import drills

    kube, now = step.services.kube, time.time()
    active = step.services.active_jobs()
    spaces = drills.list_namespaces(kube)
    removed = []
    for space in spaces:
        if space.job in active and not space.overdue(now):
            continue
        why = "deadline passed" if space.overdue(now) else f"job {space.job or '?'} is over"
        drills.delete_namespace(kube, space.name)  # its pod and claim go with it
        removed.append(f"namespace {space.name} ({why})")
        removed += drills.delete_restore(kube, space.name)
    live = {s.name for s in spaces}
    for name in drills.leftovers(kube):
        if name not in live:
            removed += [f"{what} (namespace gone)" for what in drills.delete_restore(kube, name)]
    text = ("removed " + ", ".join(removed)) if removed else "no drill leftovers"
    return {"text": text, "removed": removed}


@runbook("drill-sweep", summary="delete drill namespaces whose job is over or overdue",
         timeout=600, system=True)
def drill_sweep(ctx: PlanContext) -> Runbook:
    return Runbook([StepDef("sweep drill namespaces", sweep)], targets=[],
                   summary=lambda r: str(r["sweep drill namespaces"]["text"]))

"""/dr restore <namespace/pvc> [--backup NAME] [--replace]: a Longhorn volume back from a backup.

By default the backup is restored into a new PVC beside the old one, named
``<pvc>-restored-<MMDD-HHMM of the backup>`` (stable, so a retry or a second request finds it);
nothing that exists is touched. The restore itself follows domain.md §3 route (c) through
``adapters.kubernetes.longhorn.restore_backup``: a Volume from the Backup's ``status.url`` (a
Backup that exists and belongs to this PVC's volume, never text), a static PV, a PVC.

``--replace`` swaps the restored copy in under the old PVC name, so the workload and Git stay as
they are: the owning Flux Kustomization (the ``kustomize.toolkit.fluxcd.io/*`` labels of the
Deployment or StatefulSet that mounts the PVC) is suspended so Flux does not scale the workload
back up, the workload is scaled to 0 (its replica count kept in an annotation, so a retry never
takes 0 for the original), the old PV is set to Retain (the old data stays as a fallback), the
old PVC is deleted and created again bound to the restored PV, then the workload is scaled up
and the Kustomization resumed. Without ``--replace`` the PVC may be in use: the restore touches
nothing that exists, which is the usual way to look inside a backup. With ``--replace``, pods that
use the PVC but belong to no Deployment or StatefulSet drbot could scale down are refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from adapters.errors import NotFound
from bot.config.inventory import Inventory
from bot.errors import CommandError
from bot.grammar import NAME, QUALIFIED, Param
from bot.records.locks import LockKey, exclusive, shared
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef
from handlers import iac

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from adapters.kubernetes.longhorn.backups import Backup
    from adapters.kubernetes.workloads import Workload

REPLICAS_ANNOTATION = "drbot.io/replicas-before-restore"
FLUX_NAME, FLUX_NS = "kustomize.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/namespace"
RESTORE_TIMEOUT = 4 * 3600.0
SCALE_TIMEOUT = 600.0
POLL = 1.0

RESTORE, SUSPEND, DOWN, SWAP, UP, RESUME = ("restore", "suspend Kustomization", "scale down",
                                            "swap PVC", "scale up", "resume Kustomization")


def split(ref: str) -> tuple[str, str]:
    namespace, sep, name = ref.partition("/")
    if not sep:
        raise CommandError(f"give the PVC with its namespace, e.g. /dr restore apps/{ref}")
    return namespace, name


def locks(args: dict[str, Any], inventory: Inventory) -> list[LockKey]:
    if args.get("lost-with"):  # not while that host is being rebuilt
        return [shared("cluster"), exclusive(f"host:{args['lost-with']}")]
    return [shared("cluster"), exclusive(f"pvc:{args.get('pvc') or '-'}")]


# -- live state ---------------------------------------------------------------------------------


def find_volume(kube: Kube, ns: str, name: str) -> str:
    """The Longhorn volume of PVC ns/name: the live one, else the one its backups recorded."""
    from adapters.kubernetes import longhorn

    volumes = longhorn.list_volumes(kube)
    live = [v.name for v in volumes if (v.pvc_namespace, v.pvc) == (ns, name)]
    if live:
        return live[0]
    recorded = [b.volume for b in longhorn.list_backups(kube) if (b.pvc_namespace, b.pvc) == (ns, name)]
    if recorded:
        return recorded[-1]
    known = sorted({f"{v.pvc_namespace}/{v.pvc}" for v in volumes if v.pvc})
    raise CommandError(f"no Longhorn volume or backup belongs to PVC {ns}/{name}; known PVCs: "
                       + (", ".join(known[:12]) or "none"))


def choose_backup(kube: Kube, volume: str, ref: str, wanted: str | None) -> Backup:
    from adapters.kubernetes import longhorn

    mine = [b for b in longhorn.list_backups(kube, volume) if b.state == "Completed"]
    listed = ", ".join(f"{b.name} ({b.created})" for b in reversed(mine[-5:])) or "none"
    if not wanted:
        if not mine:
            raise CommandError(f"PVC {ref} (volume {volume}) has no completed backup to restore")
        return mine[-1]
    try:
        backup = longhorn.get_backup(kube, wanted)
    except NotFound:
        raise CommandError(f"no Longhorn backup is called {wanted}; completed backups of {ref}: "
                           f"{listed}") from None
    if backup.volume != volume:
        raise CommandError(f"backup {wanted} is of volume {backup.volume}, not of {ref} "
                           f"({volume}); its backups: {listed}")
    if backup.state != "Completed":
        raise CommandError(f"backup {wanted} is {backup.state or 'not finished'}; pick a "
                           f"completed one: {listed}")
    return backup


def users(kube: Kube, ns: str, name: str) -> list[str]:
    """Running pods that mount the PVC."""
    from adapters.kubernetes import workloads

    return workloads.pvc_users(kube, ns, name)


def room(kube: Kube, size: int, copies: int) -> list[str]:
    """Refuse a restore Longhorn has no room for, by its own replica scheduler's rule: the new
    volume would be created and never attach. Room for fewer replicas than the volume keeps is
    only a note: a degraded copy of the data beats none, and Longhorn adds the missing replicas
    once space is freed."""
    from adapters.kubernetes import drills

    fits = drills.nodes_with_room(kube, size)
    gib = f"{size / 2**30:.1f} GiB"
    if not fits:
        raise CommandError(f"Longhorn has no room for a {gib} replica of the restored volume on "
                           "any Ready, schedulable node; free space on a Longhorn disk (or add "
                           "one), then try again")
    if len(fits) < copies:
        return [f"Longhorn has room for a {gib} replica on {len(fits)} of the {copies} nodes the "
                f"volume keeps replicas on ({', '.join(fits)}): it stays degraded until space is "
                "freed"]
    return []


def pvc_spec(kube: Kube, ns: str, name: str, backup: Backup | None = None) -> dict[str, Any]:
    """Storage class, access modes and bound PV of the existing PVC; when it is gone, what
    ``backup`` recorded (never defaults: a PVC's spec cannot change after creation, and one
    that differs from Git breaks Flux). A shape nobody knows is refused."""
    from adapters.errors import Refused
    from adapters.kubernetes import longhorn, storage

    try:
        pvc = storage.get_pvc(kube, ns, name)
    except NotFound:
        pvc = None
    if pvc is not None and pvc.storage_class and pvc.access_modes:
        return {"class": pvc.storage_class, "modes": list(pvc.access_modes), "pv": pvc.volume,
                "exists": True}
    if backup is None:
        return {"class": "", "modes": [], "pv": pvc.volume if pvc else "",
                "exists": pvc is not None}
    try:
        shape = longhorn.recorded_shape(kube, backup)
    except Refused as exc:
        raise CommandError(str(exc)) from None
    return {"class": shape.storage_class, "modes": list(shape.access_modes),
            "pv": pvc.volume if pvc else "", "exists": pvc is not None}


def pvc_labels(kube: Kube, ns: str, name: str) -> dict[str, str]:
    from adapters.kubernetes import storage

    try:
        return storage.get_pvc(kube, ns, name).labels
    except NotFound:
        return {}


def new_name(name: str, backup: Backup) -> str:
    stamp = backup.created or backup.snapshot_created
    try:
        short = datetime.fromisoformat(stamp.replace("Z", "+00:00")).strftime("%m%d-%H%M")
    except ValueError:
        short = backup.name[-8:]
    return f"{name[:200]}-restored-{short}"


# -- steps --------------------------------------------------------------------------------------


def restore(step: StepContext, backup: Backup, ns: str, target: str, shape: dict[str, Any],
            replicas: int) -> dict[str, Any]:
    from adapters.kubernetes import longhorn

    # The backup and the new PVC's name are fixed before the first write: a retry's plan may
    # pick a newer backup (and so another name), which would leave this restore half done.
    chosen = step.intent("restore", lambda: {"backup": backup.name, "target": target})
    if chosen["backup"] != backup.name:
        backup = longhorn.get_backup(step.services.kube, chosen["backup"])
    target = chosen["target"]
    pvc_shape = longhorn.PvcShape(shape["class"], tuple(shape["modes"]), backup.volume_size)
    done = longhorn.restore_backup(
        step.services.kube, backup.name, target, ns, iac.timed(step, f"{ns}/{target}"),
        RESTORE_TIMEOUT, shape=pvc_shape, replicas=replicas, poll=POLL)
    return {"pvc": f"{ns}/{target}", "volume": done.volume, "pv": done.pv,
            "backup": backup.name, "size": done.size}


def set_suspended(step: StepContext, ref: str, suspend: bool, kind: str = "kustomization",
                  suspended_in: str = SUSPEND) -> dict[str, Any]:
    """Suspend (or resume) a Kustomization or HelmRelease; one suspended before is left so."""
    from adapters.kubernetes import flux

    ns, name = ref.split("/", 1)
    kube = step.services.kube
    what = f"{'HelmRelease' if kind == 'helmrelease' else 'Kustomization'} {ref}"
    if suspend:
        # Recorded before suspending: a retry would find it suspended by this very job, and the
        # resume step would then leave it suspended for good.
        get = flux.get_helmrelease if kind == "helmrelease" else flux.get_kustomization
        was = step.intent("was_suspended", lambda: get(kube, name, ns).suspended)
        if not was:
            flux.suspend(kube, kind, name, ns)
        iac.say(step, f"{what} " + ("was already suspended" if was else "suspended"))
        return {"was_suspended": was}
    if step.results.get(suspended_in, {}).get("was_suspended"):
        iac.say(step, f"{what} was suspended before; left suspended")
        return {"resumed": False}
    flux.resume(kube, kind, name, ns, timeout=step.inventory.flux.timeout_seconds,
                hooks=iac.timed(step, ref), poll=step.inventory.flux.poll_seconds)
    return {"resumed": True}


def scale_down(step: StepContext, kind: str, ns: str, wl: str, pvc: str) -> dict[str, Any]:
    from adapters.kubernetes import workloads
    from adapters.kubernetes._wait import wait_for

    kube = step.services.kube
    replicas = workloads.scale_down(kube, kind, ns, wl, REPLICAS_ANNOTATION)
    wait_for(lambda: True if not users(kube, ns, pvc) else None, timeout=SCALE_TIMEOUT, poll=POLL,
             hooks=iac.timed(step, f"{kind} {ns}/{wl}"),
             timeout_message=lambda err: f"pods still use PVC {ns}/{pvc} {SCALE_TIMEOUT:.0f}s "
             f"after scaling {kind} {ns}/{wl} to 0: {', '.join(users(kube, ns, pvc))}",
             cancel_message=f"stopped waiting; {kind} {ns}/{wl} is scaled to 0")
    return {"replicas": replicas}


def swap(step: StepContext, ns: str, name: str, restored: dict[str, Any], shape: dict[str, Any]
         ) -> dict[str, Any]:
    """Bind the old PVC name to the restored PV; the old PV is kept (Retain)."""
    from adapters.kubernetes import storage
    from adapters.kubernetes._wait import wait_for

    kube, new_pv = step.services.kube, restored["pv"]
    # The old PV is recorded before the first change: after the PVC is deleted a retry cannot
    # tell which PV it was, and the summary must still name the volume that was kept.
    old_pv = step.intent("old_pv", lambda: pvc_spec(kube, ns, name)["pv"])
    current = pvc_spec(kube, ns, name)
    if current["exists"] and current["pv"] == new_pv:
        return {"old_pv": old_pv if old_pv != new_pv else "", "swapped": True}
    if old_pv:
        storage.retain_pv(kube, old_pv)
    restored_ns, restored_name = restored["pvc"].split("/", 1)
    for pvc in ([restored_name] + ([name] if current["exists"] else [])):
        storage.delete_pvc(kube, restored_ns, pvc)

    def gone() -> bool | None:
        left = [p for p in (restored_name, name) if pvc_spec(kube, ns, p)["exists"]]
        return True if not left else None
    wait_for(gone, timeout=SCALE_TIMEOUT, poll=POLL, hooks=iac.timed(step, f"{ns}/{name}"),
             timeout_message=lambda err: f"PVC {ns}/{name} is still being deleted (a pod may "
             "still use it: kubectl describe pvc)", cancel_message="stopped during the swap")
    storage.bind_pv(kube, new_pv, ns, name)
    storage.create_pvc(kube, ns, name, storage_class=shape["class"], access_modes=shape["modes"],
                       size=restored["size"], volume=new_pv)
    iac.say(step, f"PVC {ns}/{name} now binds {new_pv}; the old PV {old_pv or '-'} is kept")
    return {"old_pv": old_pv, "swapped": True}


def scale_up(step: StepContext, kind: str, ns: str, wl: str) -> dict[str, Any]:
    from adapters.kubernetes import workloads
    from adapters.kubernetes._wait import wait_for

    kube = step.services.kube
    replicas = int(step.results.get(DOWN, {}).get("replicas", 1))
    workloads.scale_up(kube, kind, ns, wl, replicas, REPLICAS_ANNOTATION)

    def ready() -> bool | None:
        ready_now = workloads.get_workload(kube, kind, ns, wl).ready_replicas
        return True if ready_now >= replicas else None
    wait_for(ready, timeout=SCALE_TIMEOUT, poll=POLL, hooks=iac.timed(step, f"{ns}/{wl}"),
             timeout_message=lambda err: f"{kind} {ns}/{wl} has not {replicas} ready "
             f"replica(s) after {SCALE_TIMEOUT:.0f}s; check its pods",
             cancel_message=f"stopped waiting; {kind} {ns}/{wl} is scaled to {replicas}")
    return {"replicas": replicas}


# -- the runbook --------------------------------------------------------------------------------


@runbook("restore", summary="restore a Longhorn volume from a backup into a new PVC, or --replace",
         params=(Param("pvc", "namespace/name of the PVC", kind=QUALIFIED, complete="pvcs",
                       required=False),
                 Param("backup", "a backup name (default: the latest completed)", kind=NAME,
                       flag=True, required=False),
                 Param("replace", "swap the restored copy in (scales the workload down)",
                       flag=True, boolean=True, required=False),
                 Param("lost-with", "instead of one PVC: every volume that host lost "
                       "(handlers/restore_lost.py)", kind=NAME, flag=True, required=False,
                       complete="hosts")),
         locks=locks, timeout=int(RESTORE_TIMEOUT) + 3600)
def restore_pvc(ctx: PlanContext) -> Runbook:
    from adapters.kubernetes import longhorn, workloads

    lost_with = ctx.args.get("lost-with")
    if lost_with:
        if ctx.args.get("pvc") or ctx.args.get("backup") or ctx.args.get("replace"):
            raise CommandError("--lost-with restores every volume a host lost, each from its "
                               "latest backup: give it alone, e.g. /dr restore --lost-with pve2")
        from handlers.restore_lost import lost_runbook

        return lost_runbook(ctx, str(lost_with))
    if not ctx.args.get("pvc"):
        raise CommandError("give the PVC as namespace/name (/dr restore apps/web-data), or "
                           "--lost-with <pve-host> for every volume that host lost")
    ref = str(ctx.args["pvc"])
    ns, name = split(ref)
    replace = bool(ctx.args.get("replace"))
    kube = ctx.services.kube
    volume = find_volume(kube, ns, name)
    backup = choose_backup(kube, volume, ref, ctx.args.get("backup") or None)
    # Beside the old PVC nothing in use is touched, so pods that mount it do not matter: that
    # is the usual way to look inside a backup. Only --replace needs them stopped (below).
    running = users(kube, ns, name) if replace else []
    shape = pvc_spec(kube, ns, name, backup)
    try:
        copies = longhorn.get_volume(kube, volume).number_of_replicas or 3
    except NotFound:
        copies = 3
    size = backup.volume_size
    notes = room(kube, int(size) if size.isdigit() else 0, copies)
    target = new_name(name, backup)
    label = f"backup {backup.name} of {ref} (taken {backup.created})"
    steps = [StepDef(RESTORE, lambda s: restore(s, backup, ns, target, shape, copies),
                     f"{ns}/{target}", f"restore {label} into a new PVC")]
    targets = [f"restore {backup.name} into {ns}/{target}"]
    if replace:
        found = workloads.mounting(kube, ns, name)
        if running and not found:
            raise CommandError(f"pods {', '.join(running)} use {ref} but no Deployment or "
                               f"StatefulSet of {ns} mounts it; stop them, then try again")
        steps_, more = replace_steps(ns, name, found, shape, pvc_labels(kube, ns, name))
        steps += steps_
        targets += more
        notes.append(f"the current volume {shape['pv'] or volume} is kept (Retain) as a fallback")

    def summary(results: dict[str, dict[str, Any]]) -> str:
        done = results.get(RESTORE, {})
        if not replace:
            return (f"Restored {label} into PVC {ns}/{target} (volume {done.get('volume')}), "
                    f"beside {ref}. Point the app at it, or /dr restore {ref} --backup "
                    f"{backup.name} --replace to swap it in.")
        old = results.get(SWAP, {}).get("old_pv") or "-"
        return (f"Restored {label} and swapped it in: PVC {ref} now binds {done.get('pv')}. "
                f"The previous volume (PV {old}) is kept with reclaim policy Retain; delete it "
                "once the app is fine.")

    return Runbook(steps, targets=targets, notes=notes, summary=summary)


HELM_NAME, HELM_NS = "helm.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/namespace"


def owners(labels: dict[str, str], pvc_labels: dict[str, str]) -> list[tuple[str, str]]:
    """The Flux objects that would undo a swap: the workload's Kustomization and HelmRelease
    (helm-controller labels what it renders with helm.toolkit.fluxcd.io/name and /namespace),
    and the Kustomization that applied the PVC itself. (kind, namespace/name), no repeats."""
    found: list[tuple[str, str]] = []
    for kind, name_key, ns_key, source in (
            ("kustomization", FLUX_NAME, FLUX_NS, labels),
            ("helmrelease", HELM_NAME, HELM_NS, labels),
            ("kustomization", FLUX_NAME, FLUX_NS, pvc_labels)):
        if name_key in source:
            ref = (kind, f"{source.get(ns_key, 'flux-system')}/{source[name_key]}")
            if ref not in found:
                found.append(ref)
    return found


def suspend_step(kind: str, ref: str, first: bool) -> str:
    """The step's name; the workload's Kustomization keeps the historical one."""
    if first and kind == "kustomization":
        return SUSPEND
    return f"suspend {'HelmRelease' if kind == 'helmrelease' else 'Kustomization'} {ref}"


def replace_steps(ns: str, name: str, found: list[Workload],
                  shape: dict[str, Any], pvc_labels: dict[str, str] | None = None
                  ) -> tuple[list[StepDef], list[str]]:
    steps: list[StepDef] = []
    targets = [f"swap PVC {ns}/{name}"]
    if len(found) > 1:
        raise CommandError(f"{len(found)} workloads mount {ns}/{name}; scale them down yourself, "
                           "then restore beside it")
    wl = found[0] if found else None
    held = owners(wl.labels if wl else {}, pvc_labels or {})
    for i, (owner, ref) in enumerate(held):
        name_ = suspend_step(owner, ref, i == 0)
        steps.append(StepDef(name_, lambda s, k=owner, r=ref: set_suspended(s, r, True, k),
                             ref, "so Flux does not scale the workload back up or put the old "
                             "PVC back"))
        targets.append(f"suspend {ref}")
    if wl:
        kind, wname = wl.kind, wl.name
        steps.append(StepDef(DOWN, lambda s: scale_down(s, kind, ns, wname, name),
                             f"{kind} {ns}/{wname}", "scale to 0, wait until no pod uses "
                             "the PVC", destructive=True))
        targets.append(f"scale {kind} {ns}/{wname}")
    steps.append(StepDef(SWAP, lambda s: swap(s, ns, name, s.results[RESTORE], shape),
                         f"{ns}/{name}", "keep the old PV (Retain), bind the PVC name to the "
                         "restored PV", destructive=True))
    if wl:
        steps.append(StepDef(UP, lambda s: scale_up(s, kind, ns, wname), f"{kind} {ns}/{wname}",
                             "scale back to its replicas, wait until ready"))
    for i, (owner, ref) in reversed(list(enumerate(held))):
        before = suspend_step(owner, ref, i == 0)
        after = RESUME if before == SUSPEND else "resume" + before.removeprefix("suspend")
        steps.append(StepDef(after, lambda s, k=owner, r=ref, b=before: set_suspended(
            s, r, False, k, b), ref, "resume and wait for Ready"))
    return steps, targets

"""/dr restore --lost-with <pve-host>: every Longhorn volume a lost host took with it, in one job.

The volumes are those rebuild-host reports lost (a replica on the host's nodes and no healthy
replica anywhere else: ``preflight.volumes_lost_with``), each restored from its latest completed
backup by the bounded parallel scheduler (handlers/parallel_restore.py), into the PVC its backup
recorded. When that PVC still exists (bound to the lost volume), the copy goes beside it under
the name `/dr restore` would use (``<pvc>-restored-<MMDD-HHMM>``) and the summary gives the
`/dr restore ... --replace` that swaps it in: nothing that exists is touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.errors import CommandError
from bot.runbook import PlanContext, Runbook, StepContext, StepDef
from handlers import preflight
from handlers.rebuild_host import host_nodes

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from handlers.parallel_restore import Wanted

STEP = "restore lost volumes"
TIMEOUT = 4 * 3600.0


def exists(kube: Kube, ns: str, name: str) -> bool:
    from adapters.errors import NotFound
    from adapters.kubernetes import storage

    try:
        storage.get_pvc(kube, ns, name)
    except NotFound:
        return False
    return True


def lost_restores(kube: Kube, names: list[str]) -> tuple[list[Wanted], list[str]]:
    """(what to restore, notes): each lost volume's latest completed backup and its target."""
    from adapters.kubernetes import longhorn
    from handlers.parallel_restore import Wanted
    from handlers.restore import new_name

    wanted, notes = [], []
    for volume in preflight.volumes_lost_with(kube, names):
        done = [b for b in longhorn.list_backups(kube, volume.name) if b.state == "Completed"]
        if not done:
            notes.append(f"NO BACKUP: {preflight.describe_volume(volume)} cannot be restored")
            continue
        backup = done[-1]
        ns, pvc = backup.pvc_namespace or volume.pvc_namespace, backup.pvc or volume.pvc
        if not (ns and pvc):
            notes.append(f"{volume.name}: neither it nor its backup {backup.name} records a PVC; "
                         "restore it from the Longhorn UI")
            continue
        target = pvc
        ours = longhorn.pvc_bound_to(kube, pvc, ns, longhorn.restored_volume_name(ns, pvc))
        if not ours and exists(kube, ns, pvc):
            target = new_name(pvc, backup)
            notes.append(f"{ns}/{pvc} still exists: restored beside it as {ns}/{target}; swap "
                         f"it in with /dr restore {ns}/{pvc} --backup {backup.name} --replace")
        copies = volume.number_of_replicas or 3
        wanted.append(Wanted(backup, ns, target, replicas=copies))
    return wanted, notes


def lost_runbook(ctx: PlanContext, host: str) -> Runbook:
    inventory = ctx.inventory
    if host not in inventory.hosts and host not in {n.host for n in inventory.nodes.values()}:
        raise CommandError(f"{host} is not a Proxmox host of the inventory; known hosts: "
                           f"{', '.join(inventory.hosts) or 'none'}")
    names = host_nodes(inventory, host)
    wanted, notes = lost_restores(ctx.services.kube, names)
    if not wanted:
        raise CommandError(f"no Longhorn volume lost its data with {host} (every volume with a "
                           f"replica on {', '.join(names) or 'its nodes'} has a healthy copy "
                           "elsewhere)" + (": " + "; ".join(notes) if notes else ""))
    from handlers import parallel_restore

    def run(step: StepContext) -> dict[str, Any]:
        return parallel_restore.restore_all(step, wanted, TIMEOUT)

    targets = [f"restore {w.backup.name} into {w.ref}" for w in wanted]

    def summary(results: dict[str, dict[str, Any]]) -> str:
        done = results.get(STEP, {}).get("restored", [])
        return (f"Restored {len(done)} volume(s) lost with {host}: "
                + ", ".join(f"{r['pvc']} ({r['backup']})" for r in done)
                + "".join(f"\n{n}" for n in notes))

    steps = [StepDef(STEP, run, f"{len(wanted)} volumes", "restore each lost volume's latest "
                     "completed backup, in parallel within Longhorn's per-node limit")]
    return Runbook(steps, targets=targets, notes=notes, summary=summary)

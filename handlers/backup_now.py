"""/dr backup-now <kind> <name>: back up one Longhorn volume or CloudNativePG cluster now.

What the backup alerts tell you to run. The name selects an object that exists in the cluster (a
volume by its name, `namespace/pvc` or a unique PVC name; a CNPG cluster by `namespace/name` or a
unique name); nothing typed is passed on. Waits until the backup completes, so the next check
(or `/dr backups`) sees it and posts the recovery.
"""

from __future__ import annotations

import re
from typing import Any

from bot.config.inventory import Inventory
from bot.errors import CommandError
from bot.grammar import QUALIFIED, Param, ValueKind
from bot.records.locks import LockKey, exclusive, shared
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef

KIND = ValueKind("backup kind", re.compile(r"longhorn|cnpg|etcd"), "longhorn")
TIMEOUT = 3600.0
POLL = 2.0
# A Backup of a Cluster whose WAL archiving fails waits in this phase, neither running nor failed
# (cloudnative-pg pkg/management/postgres/backup.go: the instance manager waits for the WAL
# archiver; lab/controllers/cnpg.py does the same).
WAL_ARCHIVING_FAILING = "walArchivingFailing"


def locks(args: dict[str, Any], inventory: Inventory) -> list[LockKey]:
    return [shared("cluster"), exclusive(f"backup:{args['kind']}:{args['name']}")]


def one(matches: list[Any], what: str, name: str, known: list[str]) -> Any:
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise CommandError(f"{name!r} matches {len(matches)} {what}s; give namespace/name")
    listed = ", ".join(sorted(known)[:12]) or "none"
    raise CommandError(f"no {what} called {name!r}; known: {listed}")


def longhorn_volume(ctx: PlanContext, name: str) -> tuple[str, str]:
    from adapters.kubernetes import longhorn

    volumes = longhorn.list_volumes(ctx.services.kube)
    exact = [v for v in volumes if name in (v.name, f"{v.pvc_namespace}/{v.pvc}")]
    found = one(exact or [v for v in volumes if v.pvc == name], "Longhorn volume", name,
                [f"{v.pvc_namespace}/{v.pvc}" if v.pvc else v.name for v in volumes])
    return found.name, f"{found.pvc_namespace}/{found.pvc}" if found.pvc else found.name


def cnpg_cluster(ctx: PlanContext, name: str) -> tuple[str, str]:
    from adapters.kubernetes import cnpg

    clusters = cnpg.list_clusters(ctx.services.kube)
    found = one([c for c in clusters if name in (c.name, f"{c.namespace}/{c.name}")],
                "CloudNativePG cluster", name, [f"{c.namespace}/{c.name}" for c in clusters])
    return found.namespace, found.name


def longhorn_runbook(ctx: PlanContext, name: str) -> Runbook:
    volume, label = longhorn_volume(ctx, name)

    def run(step: StepContext) -> dict[str, Any]:
        from adapters.kubernetes import longhorn

        # The name is fixed before anything is created: a retry goes on with this backup
        # instead of starting a second one.
        name = step.intent("backup", lambda: longhorn.new_backup_name(volume))
        backup = longhorn.trigger_backup(step.services.kube, volume, wait=True, timeout=TIMEOUT,
                                         poll=POLL, hooks=step.hooks, name=name)
        return {"backup": backup.name, "volume": volume, "label": label}

    target = f"Longhorn volume {label}"
    return Runbook([StepDef("back up", run, target, "snapshot, then back up to the backup target "
                            "and wait until it completes")], targets=[target],
                   summary=lambda r: f"{target}: backup {r['back up']['backup']} completed")


def cnpg_runbook(ctx: PlanContext, name: str) -> Runbook:
    namespace, cluster = cnpg_cluster(ctx, name)
    target = f"CloudNativePG cluster {namespace}/{cluster}"

    def run(step: StepContext) -> dict[str, Any]:
        from adapters.errors import AdapterError
        from adapters.kubernetes import cnpg
        from adapters.kubernetes._wait import wait_for

        kube = step.services.kube
        name = step.intent("backup", lambda: cnpg.new_backup_name(cluster))
        backup = cnpg.trigger_backup(kube, cluster, namespace, name)
        step.progress(f"Backup {backup.name} created", target=target)

        held: list[bool] = []

        def completed() -> Any:
            now = next((b for b in cnpg.list_backups(kube, namespace, cluster)
                        if b.name == backup.name), None)
            if now and now.phase == "failed":
                raise AdapterError(f"CNPG backup {backup.name} failed: {now.error or 'no error'}")
            if now and now.phase == WAL_ARCHIVING_FAILING and not held:
                held.append(True)  # said once: CNPG holds the backup, it has not failed
                step.progress(f"CNPG holds backup {backup.name}: the cluster's WAL archiving "
                              "fails, and the backup starts once it works again. See `kubectl "
                              f"-n {namespace} describe cluster {cluster}` (ContinuousArchiving)"
                              f"; or /dr cancel, and the Backup waits on in the cluster",
                              target=target, status=WAL_ARCHIVING_FAILING)
            return now if now and now.phase == "completed" else None

        done = wait_for(completed, timeout=TIMEOUT, poll=POLL, hooks=step.hooks,
                        timeout_message=lambda err: f"CNPG backup {backup.name} did not complete "
                        f"within {TIMEOUT:.0f}s; see `kubectl -n {namespace} describe backup "
                        f"{backup.name}`",
                        cancel_message=f"Stopped waiting; CNPG goes on with {backup.name}.")
        return {"backup": done.name, "backup_id": done.backup_id}

    return Runbook([StepDef("back up", run, target, "create a Backup object and wait until it "
                            "completes")], targets=[target],
                   summary=lambda r: f"{target}: backup {r['back up']['backup']} completed")


@runbook("backup-now", summary="back up a Longhorn volume or CNPG cluster now",
         params=(Param("kind", "longhorn or cnpg", kind=KIND),
                 Param("name", "the volume (or namespace/pvc) or the CNPG cluster",
                       kind=QUALIFIED, complete="cnpg", complete_when=("kind", "cnpg"))),
         locks=locks, timeout=int(TIMEOUT) + 300)
def backup_now(ctx: PlanContext) -> Runbook:
    kind, name = str(ctx.args["kind"]), str(ctx.args["name"])
    if kind == "etcd":
        raise CommandError("etcd snapshots are taken by K3s on each server; /dr etcd-sync copies "
                           "them off-node")
    return longhorn_runbook(ctx, name) if kind == "longhorn" else cnpg_runbook(ctx, name)

"""/dr etcd-sync: copy the K3s etcd snapshots of every server node off-node, to the etcd store.

Ansible's fetch playbook (``iac.ansible.fetch_snapshots_playbook``), limited to the servers,
copies each server's snapshots into a per-job directory (extravar ``fetch_dest``; one folder per
host). Those the store lacks (same name and size) are uploaded; snapshots already older than the
retention (``backups.etcd.retention_days``) are not, since the prune would remove them at once.
The prune then deletes the store's snapshots older than the retention, always keeping the newest
of each node and name (scheduled and on-demand apart, as ``k3s etcd-snapshot prune`` does). A
second run finds everything present and nothing to prune: it changes nothing.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.config.inventory import Inventory
from bot.errors import CommandError
from bot.records.locks import LockKey, shared
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef
from handlers import iac

FETCH, UPLOAD, PRUNE = "fetch snapshots", "upload missing", "prune to retention"


def locks(args: dict[str, Any], inventory: Inventory) -> list[LockKey]:
    return [shared("cluster")]


def servers(step_or_ctx: StepContext | PlanContext) -> list[str]:
    return [n.ansible_host for n in step_or_ctx.inventory.nodes.values() if n.role == "server"]


def fetch_dir(step: StepContext) -> str:
    return os.path.join(iac.job_dir(step.inventory, step.job_id), "etcd-snapshots")


def fetch(step: StepContext) -> dict[str, Any]:
    ansible = iac.require_iac(step.inventory).ansible
    dest = fetch_dir(step)
    shutil.rmtree(dest, ignore_errors=True)  # a retry fetches afresh
    os.makedirs(dest, mode=0o700)
    hosts = servers(step)
    iac.run_playbook(step, ansible.fetch_snapshots_playbook, hosts, {"fetch_dest": dest})
    files = sorted(str(p) for p in Path(dest).rglob("*") if p.is_file())
    per_host = {h: sum(1 for f in files if f"/{h}/" in f) for h in hosts}
    return {"files": files, "per_host": per_host}


def cutoff(step: StepContext) -> datetime:
    return datetime.now(UTC) - timedelta(days=step.inventory.backups.etcd.retention_days)


def upload_plan(step: StepContext, store: Any) -> dict[str, list[str]]:
    """Sort the fetched files: to upload, already in the store, past the retention, foreign."""
    from adapters import backupstore

    oldest = cutoff(step)
    plan: dict[str, list[str]] = {"upload": [], "present": [], "expired": [], "foreign": []}
    for path in map(Path, step.results.get(FETCH, {}).get("files", [])):
        parsed = backupstore.parse_etcd_snapshot_name(path.name)
        if parsed is None:
            plan["foreign"].append(path.name)
        elif parsed[2] < oldest:
            plan["expired"].append(path.name)
        elif uploaded(store, path):
            plan["present"].append(path.name)
        else:
            plan["upload"].append(str(path))
    return plan


def uploaded(store: Any, path: Path) -> bool:
    found = store.stat(path.name)
    return found is not None and found.size == path.stat().st_size


def upload(step: StepContext) -> dict[str, Any]:
    """Upload what the store lacked when the step began (recorded first: a retry would count
    this job's own uploads as already there)."""
    from adapters import backupstore

    store = step.services.store("etcd")
    plan = step.intent("upload", lambda: upload_plan(step, store))
    for path in map(Path, plan["upload"]):
        if uploaded(store, path):
            continue  # an earlier attempt of this step got it there
        backupstore.upload_etcd_snapshot(store, "", path)
        parsed = backupstore.parse_etcd_snapshot_name(path.name)
        iac.say(step, f"uploaded {path.name}", parsed[1] if parsed else "")
    if plan["foreign"]:
        iac.say(step, f"not K3s snapshot names, left out: {', '.join(plan['foreign'][:5])}")
    return {"uploaded": [Path(p).name for p in plan["upload"]], "present": len(plan["present"]),
            "expired": len(plan["expired"]), "store": store.location}


def prune(step: StepContext) -> dict[str, Any]:
    from adapters import backupstore

    store = step.services.store("etcd")
    oldest = cutoff(step)
    groups: dict[tuple[str, str], list[Any]] = {}
    for snap in backupstore.etcd_snapshots(store):
        groups.setdefault((snap.node, snap.base), []).append(snap)
    doomed = [s for snaps in groups.values() for s in snaps[:-1] if s.taken_at < oldest]
    if doomed and step.cancelled() and not step.resumed("prune"):
        raise CommandError("cancelled before pruning; nothing was deleted")
    # Recorded before the delete: a retry no longer sees what an earlier attempt deleted.
    chosen = step.intent("prune", lambda: [{"key": s.key, "name": s.name, "node": s.node}
                                           for s in doomed] if doomed else [])
    if chosen:
        store.delete([c["key"] for c in chosen])  # deleting a key already gone is no error
    for snap in chosen:
        iac.say(step, f"deleted {snap['name']} (older than the retention)", snap["node"])
    left = backupstore.etcd_snapshots(store)
    newest = max((s.taken_at for s in left), default=None)
    return {"deleted": [c["name"] for c in chosen], "kept": len(left),
            "newest": newest.isoformat() if newest else "",
            "newest_age_hours": round((datetime.now(UTC) - newest).total_seconds() / 3600, 1)
            if newest else None}


def summary(results: dict[str, dict[str, Any]]) -> str:
    fetched, up, pr = results.get(FETCH, {}), results.get(UPLOAD, {}), results.get(PRUNE, {})
    hosts = ", ".join(f"{h} {n}" for h, n in fetched.get("per_host", {}).items())
    age = pr.get("newest_age_hours")
    return (f"etcd snapshots: fetched {len(fetched.get('files', []))} ({hosts}); uploaded "
            f"{len(up.get('uploaded', []))}, already there {up.get('present', 0)}, older than "
            f"the retention {up.get('expired', 0)}; pruned {len(pr.get('deleted', []))}; "
            f"{pr.get('kept', 0)} in {up.get('store', 'the store')}, newest "
            + (f"{age}h old." if age is not None else "none."))


@runbook("etcd-sync", summary="copy K3s etcd snapshots from the servers to the store, prune",
         locks=locks, timeout=3600)
def etcd_sync(ctx: PlanContext) -> Runbook:
    iac.require_iac(ctx.inventory)
    hosts = servers(ctx)
    if not hosts:
        raise CommandError("the inventory lists no server node: there are no etcd snapshots")
    store = ctx.inventory.backups.etcd_store
    if store is None:
        raise CommandError("the inventory has no backups.etcd_store; add where the etcd "
                           "snapshots are kept")
    days = ctx.inventory.backups.etcd.retention_days
    return Runbook([
        StepDef(FETCH, fetch, ", ".join(hosts), "Ansible fetch of each server's snapshots"),
        StepDef(UPLOAD, upload, store.url, "upload those the store lacks"),
        StepDef(PRUNE, prune, store.url, f"delete copies older than {days} days (keeping the "
                "newest of each node)"),
    ], targets=[f"servers {', '.join(hosts)}", f"store {store.url}"], summary=summary)

"""What phase 3 of /dr rebuild-cluster must restore: every volume the object store holds.

On a new cluster Longhorn's Backup objects exist only once Longhorn is installed and its backup
target has synced from the store (longhorn-manager controller/backup_target_controller.go pulls
the store's volumes into BackupVolumes, then controller/backup_volume_controller.go pulls each
volume's backups into Backups; the poll interval is 300 s by default). So the expected set comes
from the store itself, and the Backups are read only after a sync that began after the step did
(drbot asks for one at once through the target's ``spec.syncRequestedAt``). A stored volume
without a Backup object, or whose latest backup records no PVC, is a failure, never a silent
skip.

These functions say what to restore and with which PVC spec; how the restores are run belongs to
the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from adapters.errors import AdapterError, NotFound
from bot.errors import CommandError

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from adapters.kubernetes.longhorn.backups import Backup
    from adapters.kubernetes.longhorn.restore import PvcShape
    from adapters.progress import Hooks
    from adapters.s3 import ObjectStore
    from bot.config.inventory import Inventory
    from bot.runbook import StepContext


@dataclass
class RestoreSet:
    """The backups to restore (one per PVC) and the stored volumes that cannot be restored."""

    planned: list[Backup] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "<volume>: why"


def stored_volumes(store: ObjectStore) -> list[str]:
    """Volumes in the Longhorn store with a completed backup (``volume.cfg`` names one)."""
    from adapters import backupstore

    return sorted(v.name for v in backupstore.longhorn_volumes(store) if v.last_backup_name)


def require_store(inventory: Inventory) -> None:
    if inventory.backups.longhorn_store is None:
        raise CommandError("the inventory has no backups.longhorn_store: phase 3 of "
                           "rebuild-cluster reads there which volumes must come back")


def _stamp(value: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    return stamp.replace(tzinfo=stamp.tzinfo or UTC) if stamp else None


def sync_mark(now: datetime) -> datetime:
    """The time to ask a sync for, and to wait for a sync stamped at or after: the first whole
    second after ``now``.

    Longhorn syncs a target only when ``spec.syncRequestedAt`` is strictly after
    ``status.lastSyncedAt``, and both are whole seconds once stored (backup_target_controller.go;
    metav1.Time serializes to the second). A request stamped with this second could be taken as
    answered by a pass that began earlier in the same second, before the store was read here; no
    pass begun before ``now`` is stamped as late as the next second."""
    return now.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)


def request_sync(kube: Kube, at: datetime) -> list[str]:
    """Ask every backup target to sync now (``spec.syncRequestedAt``); their names."""
    from adapters.kubernetes import longhorn

    names = [t.name for t in longhorn.list_backup_targets(kube)]
    for name in names:
        longhorn.request_target_sync(kube, name, at)
    return names


def not_synced(kube: Kube, since: datetime, stored: list[str]) -> list[str]:
    """What has not synced from the store since ``since``: targets and stored volumes."""
    from adapters.kubernetes import longhorn

    targets = longhorn.list_backup_targets(kube)
    waiting = [] if targets else ["no Longhorn BackupTarget exists yet (is Longhorn installed?)"]
    for t in targets:
        synced = _stamp(t.last_synced_at)
        if not t.available or synced is None or synced < since:
            waiting.append(f"backup target {t.name} ({t.message or 'not synced yet'})")
    volumes = {bv.volume: _stamp(bv.last_synced_at) for bv in longhorn.list_backup_volumes(kube)}
    for name in stored:
        if volumes.get(name) is None or volumes[name] < since:
            waiting.append(f"backup volume {name}")
    return waiting


def wait_synced(kube: Kube, stored: list[str], since: datetime, *, timeout: float, poll: float,
                hooks: Hooks) -> None:
    """Request a sync, then wait until the targets and every stored volume synced after it."""
    from adapters.kubernetes._wait import wait_for

    request_sync(kube, since)
    last: list[str] = []

    def done() -> bool | None:
        last[:] = not_synced(kube, since, stored)
        return True if not last else None

    wait_for(done, timeout=timeout, poll=poll, hooks=hooks,
             timeout_message=lambda err: f"Longhorn has not synced its backups from the store "
             f"within {timeout:.0f}s: still waiting for {', '.join(last[:6]) or err}. Check the "
             "backup target's URL and credential Secret in Longhorn's settings",
             cancel_message="stopped waiting for Longhorn's backup target to sync")


def expected_set(kube: Kube, stored: list[str], now: datetime | None = None) -> RestoreSet:
    """For each stored volume, its newest restorable backup; a failure for each that has none."""
    from adapters.kubernetes import longhorn

    now = now or datetime.now(UTC)
    backups = longhorn.list_backups(kube)
    plan = longhorn.latest_restorable(backups)
    planned_volumes = {b.volume for b in plan.values()}
    out = RestoreSet(planned=[plan[k] for k in sorted(plan)])
    for volume in stored:
        if volume in planned_volumes:
            continue
        mine = [b for b in backups if b.volume == volume and b.state == "Completed"]
        why = ("its backups record no PVC (taken without Longhorn's KubernetesStatus label)"
               if mine else "Longhorn shows no completed Backup of it")
        out.missing.append(f"{volume}: {why}")
    return out


def started_apps(kube: Kube, kustomizations: list[str], planned: list[Backup]) -> list[str]:
    """Signs that an application began before its volumes came back: a Kustomization phase 2
    suspended that has applied a revision (Flux applies a new Kustomization at once unless a
    ``dependsOn`` holds it), or a PVC to restore that exists and is not drbot's restore."""
    from adapters.kubernetes import flux, storage
    from adapters.kubernetes.longhorn.restore import restored_volume_name

    found = []
    for ref in kustomizations:
        ns, name = ref.split("/", 1)
        try:
            ks = flux.get_kustomization(kube, name, ns)
        except NotFound:
            continue
        if ks.revision:
            found.append(f"Kustomization {ref} applied {ks.revision}")
    for backup in planned:
        try:
            pvc = storage.get_pvc(kube, backup.pvc_namespace, backup.pvc)
        except NotFound:
            continue
        if pvc.volume != restored_volume_name(backup.pvc_namespace, backup.pvc):
            found.append(f"PVC {backup.pvc_namespace}/{backup.pvc} exists "
                         f"(bound to {pvc.volume or 'nothing yet'})")
    return found


def pvc_shape(kube: Kube, backup: Backup) -> PvcShape:
    """The PVC spec a restore of ``backup`` must create (what it recorded)."""
    from adapters.kubernetes import longhorn

    return longhorn.recorded_shape(kube, backup)


def open_store(step: StepContext) -> ObjectStore:
    require_store(step.inventory)
    try:
        return step.services.store("longhorn")
    except (AdapterError, NotFound) as exc:
        raise CommandError(f"cannot open the Longhorn store: {exc}") from None

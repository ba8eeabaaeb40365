"""Facts about every watched object, read from both sides: the cluster and the object store.

A backup that Kubernetes reports but the bucket lacks is not a backup, so each object carries
what each side says. A side that cannot be reached is recorded once (a `Sight` with its error),
not per object. Reads are shaped to grow with the number of objects, never with the number of
backups: per Longhorn volume one `volume.cfg` and one listing of its `backups/` folder; per CNPG
cluster one listing of `base/`, the newest `backup.info` and the newest WAL folder; one listing for
all etcd snapshots. Kubernetes is read with one list call per resource type.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from adapters import backupstore as bs
from adapters.errors import AdapterError, NotFound
from bot.errors import ConfigError

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from adapters.s3 import ObjectStore
    from bot.config.inventory import Inventory

T = TypeVar("T")
R = TypeVar("R")
WORKERS = 8
BARMAN_READS = 5  # newest backup.info files read to find the newest DONE one
log = logging.getLogger("drbot.watch")


class Sources(Protocol):
    """Where facts come from (bot.worker.services.Services is one)."""

    @property
    def kube(self) -> Kube: ...

    def store(self, kind: str) -> ObjectStore: ...


@dataclass
class Sight:
    """Whether one side could be read in this check."""

    side: str  # "cluster" or "store:<kind>"
    what: str  # for people: "the Longhorn store s3://bucket/"
    error: str = ""
    configured: bool = True

    @property
    def ok(self) -> bool:
        return self.configured and not self.error


@dataclass
class SeenBackup:
    """One backup as the two sides know it. ``in_store`` None: the store was not read."""

    name: str
    at: datetime | None = None
    cluster_state: str = ""  # "completed", "running", "failed" or "" (not in the cluster)
    in_store: bool | None = None
    detail: str = ""


@dataclass
class ObjectFacts:
    kind: str
    name: str
    label: str = ""
    aliases: tuple[str, ...] = ()
    backups: dict[str, SeenBackup] = field(default_factory=dict)
    store_last: SeenBackup | None = None  # the store's own newest completed backup
    archiving: bool | None = None  # CNPG ContinuousArchiving
    archiving_message: str = ""
    last_wal: tuple[str, datetime] | None = None
    store_dir: str = ""  # CNPG: the folder of its server in the store ("" = the store's root)
    server: str = ""  # CNPG: its barman server name (the cluster's name unless set)
    notes: list[str] = field(default_factory=list)
    error: str = ""  # this object's data could not be read (a corrupt file, say)

    def seen(self, name: str) -> SeenBackup:
        if name not in self.backups:
            self.backups[name] = SeenBackup(name)
        return self.backups[name]


@dataclass
class Facts:
    at: datetime
    sights: dict[str, Sight] = field(default_factory=dict)
    objects: list[ObjectFacts] = field(default_factory=list)
    store_requests: int = 0

    def sight(self, side: str) -> Sight:
        return self.sights[side]


def parallel(fn: Callable[[T], R], items: Iterable[T], workers: int = WORKERS) -> list[R]:
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def when(text: str | None) -> datetime | None:
    try:
        return bs.parse_time(text)
    except ValueError:
        return None


def reason(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


# ---- sides ---------------------------------------------------------------------------------

def open_store(sources: Sources, inventory: Inventory, kind: str, title: str
               ) -> tuple[ObjectStore | None, Sight]:
    entry = getattr(inventory.backups, f"{kind}_store")
    if entry is None:
        return None, Sight(f"store:{kind}", f"the {title} store", configured=False)
    sight = Sight(f"store:{kind}", f"the {title} store {entry.url}")
    try:
        return sources.store(kind), sight
    except (AdapterError, ConfigError) as exc:
        sight.error = reason(exc)
        return None, sight


def read_side(sight: Sight, fn: Callable[[], T]) -> T | None:
    """Run one side's reads; an adapter error marks the side blind (one record, not per object)."""
    if not sight.ok:
        return None
    try:
        return fn()
    except AdapterError as exc:
        sight.error = reason(exc)
        log.warning("backup watch: %s unreadable: %s", sight.what, sight.error)
        return None


# ---- Longhorn --------------------------------------------------------------------------------

@dataclass
class _LhCluster:
    volumes: dict[str, tuple[str, str]]  # volume -> (pvc namespace, pvc)
    backups: list[Any]


def _lh_cluster(kube: Kube) -> _LhCluster:
    from adapters.kubernetes import longhorn

    volumes = {v.name: (v.pvc_namespace, v.pvc) for v in longhorn.list_volumes(kube)}
    return _LhCluster(volumes, longhorn.list_backups(kube))


def _lh_store_volume(store: ObjectStore, obj: ObjectFacts) -> None:
    """volume.cfg (the last completed backup) and the names in backups/ (one listing)."""
    key = bs.longhorn_volume_cfg_key("", obj.name)
    try:
        raw = store.read(key)
    except NotFound:
        raw = None
    if raw is not None:
        try:
            cfg = json.loads(raw)
            last, at = str(cfg.get("LastBackupName") or ""), bs.parse_time(cfg.get("LastBackupAt"))
        except (ValueError, TypeError, AttributeError) as exc:
            obj.error = f"{store.location.rstrip('/')}/{key} is corrupt ({exc}); inspect it"
            return
        if last:
            seen = obj.seen(last)
            seen.in_store, seen.at = True, seen.at or at
            obj.store_last = seen
    prefix = bs.longhorn_volume_dir(obj.name) + "backups/"
    for info in store.list(prefix, delimiter="/"):
        leaf = info.key.rpartition("/")[2]
        if leaf.startswith("backup_") and leaf.endswith(".cfg"):
            seen = obj.seen(leaf[len("backup_"):-len(".cfg")])
            seen.in_store = True
            seen.at = seen.at or info.modified


def _lh_check_unlisted(store: ObjectStore, obj: ObjectFacts) -> None:
    """A newer backup the cluster calls completed: missing from the bucket, or still running?"""
    last = obj.store_last.at if obj.store_last and obj.store_last.at else None
    for seen in obj.backups.values():
        if seen.cluster_state == "completed" and seen.in_store and seen.at and \
                (last is None or seen.at > last) and seen is not obj.store_last:
            try:
                backup = bs.longhorn_backup(store, "", obj.name, seen.name)
            except NotFound:
                seen.in_store = False
            except AdapterError as exc:
                seen.detail = reason(exc)
            else:
                if backup.in_progress:
                    seen.in_store, seen.detail = False, "still being written to the bucket"


def longhorn(sources: Sources, inventory: Inventory, facts: Facts) -> None:
    store, store_sight = open_store(sources, inventory, "longhorn", "Longhorn")
    facts.sights[store_sight.side] = store_sight
    cluster = read_side(facts.sight("cluster"), lambda: _lh_cluster(sources.kube))
    objects: dict[str, ObjectFacts] = {}
    if cluster is not None:
        for name, (namespace, pvc) in cluster.volumes.items():
            label = f"{namespace}/{pvc}" if pvc else name
            objects[name] = ObjectFacts("longhorn", name, label, (name, label, pvc))
        for backup in cluster.backups:
            obj = objects.get(backup.volume)
            if obj is None:
                continue
            seen = obj.seen(backup.name)
            seen.at = when(backup.snapshot_created) or when(backup.created)
            seen.cluster_state = {"Completed": "completed", "Error": "failed"}.get(
                backup.state, "running")
            seen.detail = backup.error
            seen.in_store = False if store is not None else None
    elif store is not None:
        names = read_side(store_sight, lambda: bs.longhorn_volume_names(store))
        for name in names or []:
            objects[name] = ObjectFacts("longhorn", name, name, (name,))
    if store is not None and store_sight.ok and objects:
        def read(obj: ObjectFacts) -> None:
            _lh_store_volume(store, obj)
            _lh_check_unlisted(store, obj)
        read_side(store_sight, lambda: parallel(read, objects.values()))
        if not store_sight.ok:
            for obj in objects.values():
                for seen in obj.backups.values():
                    seen.in_store = None
                obj.store_last = None
    facts.objects.extend(objects.values())
    if store is not None:
        facts.store_requests += store.requests


# ---- CloudNativePG ---------------------------------------------------------------------------

def _barman_time(backup_id: str) -> datetime | None:
    try:
        return datetime.strptime(backup_id, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def bs_join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def store_dir(store_url: str, destination: str) -> str | None:
    """The folder of ``destination`` (a CNPG destinationPath) inside the store at ``store_url``;
    None when the destination is elsewhere. "" (unknown) means the store's root."""
    if not destination:
        return ""
    base, dest = store_url.rstrip("/") + "/", destination.rstrip("/") + "/"
    return dest[len(base):].strip("/") if dest.startswith(base) else None


def _cnpg_store(store: ObjectStore, obj: ObjectFacts) -> None:
    server = obj.server or obj.name
    ids = sorted(p.rstrip("/").rpartition("/")[2]
                 for p in store.list_prefixes(bs_join(obj.store_dir, server, "base") + "/"))
    for backup_id in ids:
        seen = obj.seen(backup_id)
        seen.in_store, seen.at = True, seen.at or _barman_time(backup_id)
    for backup_id in list(reversed(ids))[:BARMAN_READS]:
        try:
            info = bs.read_barman_backup(store, obj.store_dir, server, backup_id)
        except NotFound:
            continue
        except AdapterError as exc:
            obj.notes.append(reason(exc))
            continue
        seen = obj.backups[backup_id]
        if info.status == "DONE":
            seen.at = info.end_time or seen.at
            obj.store_last = seen
            break
        seen.detail = f"barman status {info.status or 'unknown'}"
        seen.in_store = False  # present but not a completed backup
    wal = bs.barman_latest_wal(store, obj.store_dir, server)
    obj.last_wal = wal


def cnpg(sources: Sources, inventory: Inventory, facts: Facts) -> None:
    from adapters.kubernetes import cnpg as pg

    store, store_sight = open_store(sources, inventory, "cnpg", "CloudNativePG")
    facts.sights[store_sight.side] = store_sight
    kube = sources.kube
    cluster = read_side(facts.sight("cluster"),
                        lambda: (pg.list_clusters(kube), pg.list_backups(kube)))
    objects: dict[str, ObjectFacts] = {}
    store_url = inventory.backups.cnpg_store.url if inventory.backups.cnpg_store else ""
    if cluster is not None:
        clusters, backups = cluster
        names = [c.name for c in clusters]
        for c in clusters:
            # keyed by namespace/name: two clusters of one name in two namespaces are both seen
            label = f"{c.namespace}/{c.name}"
            where = store_dir(store_url, c.destination)
            obj = ObjectFacts("cnpg", c.name if names.count(c.name) == 1 else label, label,
                              (c.name, label), archiving=c.archiving,
                              archiving_message=c.archiving_message, server=c.server_name,
                              store_dir=where or "")
            if where is None:
                obj.notes.append(f"its backups go to {c.destination}, outside the configured "
                                 f"store {store_url}")
            objects[label] = obj
        for b in backups:
            obj = objects.get(f"{b.namespace}/{b.cluster}")
            if obj is None:
                continue
            seen = obj.seen(b.backup_id or b.name)
            seen.at = when(b.stopped) or when(b.started)
            seen.cluster_state = {"completed": "completed", "failed": "failed"}.get(
                b.phase, "running")
            seen.detail = b.error
            seen.in_store = False if store is not None else None
    elif store is not None:
        servers = read_side(store_sight, lambda: bs.barman_servers(store, ""))
        for name in servers or []:
            objects[name] = ObjectFacts("cnpg", name, name, (name,))
    if store is not None and store_sight.ok and objects:
        def read(obj: ObjectFacts) -> None:
            _cnpg_store(store, obj)
        read_side(store_sight, lambda: parallel(read, objects.values()))
    facts.objects.extend(objects.values())
    if store is not None:
        facts.store_requests += store.requests


# ---- K3s etcd snapshots ----------------------------------------------------------------------

def etcd(sources: Sources, inventory: Inventory, facts: Facts) -> None:
    from adapters.kubernetes import etcd as k3s

    store, store_sight = open_store(sources, inventory, "etcd", "etcd snapshot")
    facts.sights[store_sight.side] = store_sight
    snaps = read_side(facts.sight("cluster"), lambda: k3s.list_etcd_snapshots(sources.kube))
    stored = read_side(store_sight, lambda: bs.etcd_snapshots(store)) if store else None
    if snaps is None and stored is None and not (store_sight.ok or facts.sight("cluster").ok):
        return
    obj = ObjectFacts("etcd", "etcd", "off-node copies", ("etcd",))
    local: dict[str, datetime] = {}
    for snap in snaps or []:
        at = when(snap.created)
        if not snap.s3:
            if at and snap.ready and (snap.node not in local or at > local[snap.node]):
                local[snap.node] = at
            continue
        # K3s keeps ".zip" in spec.snapshotName of a compressed snapshot (k3s pkg/etcd/snapshot/
        # types.go: Compressed = HasSuffix(SnapshotName, ".zip")); both sides join without it.
        seen = obj.seen(snap.snapshot_name.removesuffix(".zip"))
        seen.at = at
        seen.cluster_state = "completed" if snap.ready else ("failed" if snap.error else "running")
        seen.detail = snap.error
        seen.in_store = False if stored is not None else None
    for snap in stored or []:
        seen = obj.seen(snap.name.removesuffix(".zip"))
        seen.in_store, seen.at = True, snap.taken_at
        if obj.store_last is None or (obj.store_last.at and snap.taken_at >= obj.store_last.at):
            obj.store_last = seen
    if local:
        node, newest = max(local.items(), key=lambda item: item[1])
        obj.notes.append(f"newest local snapshot: {node} at {newest:%Y-%m-%d %H:%M} UTC")
    facts.objects.append(obj)
    if store is not None:
        facts.store_requests += store.requests


def cluster_sight(inventory: Inventory, sources: Sources) -> Sight:
    target = inventory.kubernetes
    where = ", ".join(target.endpoints) or target.kubeconfig or "in-cluster"
    return Sight("cluster", f"the Kubernetes API ({where})")


def collect(sources: Sources, inventory: Inventory, at: datetime | None = None) -> Facts:
    """Read both sides for every kind. Never raises for an unreachable side: see `Facts.sights`."""
    facts = Facts(at or datetime.now(UTC))
    facts.sights["cluster"] = cluster_sight(inventory, sources)
    for reader in (longhorn, cnpg, etcd):
        reader(sources, inventory, facts)
    return facts

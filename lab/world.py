"""The lab's homelab as data: what it is made of, the names derived from it, and the state only
the lab knows.

Two Proxmox hosts; three K3s servers (two on pve1, so losing pve1 loses etcd quorum) and two
agents; Longhorn volumes and CloudNativePG clusters with their backups. The Kubernetes objects
the homelab starts as (Flux, Longhorn, CloudNativePG and K3s objects as their controllers would
have left them) are built from this data in `lab.seed`, the backup target's contents in
`lab.store`. The deterministic names (backups, WAL segments, etcd snapshots) live here with
the data because the Kubernetes seed, the backup target, the VMs' disks (`lab.files`) and the
controllers must all derive the same ones.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

K3S_VERSION = "v1.30.5+k3s1"
LONGHORN_NS = "longhorn-system"
FLUX_NS = "flux-system"
CNPG_NS = "databases"
HOSTS = ["pve1", "pve2"]
BUCKETS = {"longhorn": "drbot-lab-longhorn", "cnpg": "drbot-lab-cnpg", "etcd": "drbot-lab-etcd"}
ETCD_FOLDER = "k3s-etcd"
REGION = "us-east-1"
BACKUP_TARGET_URL = f"s3://{BUCKETS['longhorn']}@{REGION}/"
NODE_FINALIZER = "wrangler.cattle.io/node"
ETCD_FINALIZER = "wrangler.cattle.io/managed-etcd-controller"
SNAPSHOT_DIR = "var/lib/rancher/k3s/server/db/snapshots"
K3S_KUBECONFIG = "etc/rancher/k3s/k3s.yaml"  # a server's admin kubeconfig, on its disk
K3S_LOCAL_API = "https://127.0.0.1:6443"  # the API server that kubeconfig names


class LonghornVersion(StrEnum):
    """The Longhorn minor version the lab runs: its node-deletion rules differ.

    longhorn-manager ``webhook/resources/node/validator.go`` validates DELETE of a Longhorn Node
    only from v1.10.0 (the validator's operations gained ``Delete``): up to v1.9 deleting the
    object is accepted whatever the node holds (only the REST API's ``manager/node.go``
    ``DeleteNode`` checked), from v1.10 the webhook refuses it unless the node's Ready
    condition is not True with reason ``KubernetesNodeGone`` or ``ManagerPodMissing``,
    ``spec.allowScheduling`` is false and no replica or engine is on it (or Longhorn is
    uninstalling: annotation ``longhorn.io/delete-node-from-longhorn``).
    """

    V1_7 = "1.7"
    V1_8 = "1.8"
    V1_10 = "1.10"

    @property
    def validates_node_delete(self) -> bool:
        return self is LonghornVersion.V1_10

    @property
    def chart_version(self) -> str:
        """The Longhorn chart the seed's HelmRelease installs."""
        return {"1.7": "1.7.2", "1.8": "1.8.2", "1.10": "1.10.1"}[self.value]


@dataclass(frozen=True)
class NodeSpec:
    """One K3s node of the lab and the VM it runs on."""

    name: str
    host: str
    vmid: int
    role: str
    ip: str
    cluster_init: bool = False

    @property
    def server(self) -> bool:
        return self.role == "server"

    @property
    def terraform_address(self) -> str:
        return f'proxmox_virtual_environment_vm.k3s["{self.name}"]'


NODES: list[NodeSpec] = [
    NodeSpec("k3s-server-1", "pve1", 101, "server", "10.0.10.11", cluster_init=True),
    NodeSpec("k3s-server-2", "pve1", 102, "server", "10.0.10.12"),
    NodeSpec("k3s-server-3", "pve2", 103, "server", "10.0.10.13"),
    NodeSpec("k3s-agent-1", "pve2", 104, "agent", "10.0.10.21"),
    NodeSpec("k3s-agent-2", "pve2", 105, "agent", "10.0.10.22"),
]
DRBOT_NODES = ["k3s-agent-2"]


def node_spec(name: str) -> NodeSpec:
    for spec in NODES:
        if spec.name == name:
            return spec
    raise KeyError(f"no lab node {name!r}")


def stable_hex(*parts: str, n: int = 8) -> str:
    """Deterministic hex digits, so the seed is the same on every start."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


def stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "drbot-lab/" + "/".join(parts)))


def ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_password_hash(vm_uuid: str) -> str:
    """What the lab's K3s stores for a node: derived from the VM's SMBIOS uuid (one per VM)."""
    return hashlib.sha256(vm_uuid.encode()).hexdigest()


def vm_uuid(node: str, incarnation: str = "") -> str:
    return stable_uuid("vm", node, incarnation)


# ------------------------------------------------------------------------------ state


@dataclass
class EtcdMember:
    """One member of K3s's embedded etcd, as `etcdctl member list` shows it."""

    id: str
    name: str
    node: str
    peer_url: str
    healthy: bool = True


@dataclass
class WorldState:
    """State that lives in no API: the etcd member list and the lab's own event log.

    Written by the controllers on the lab loop, read by tests from any thread (under `lock`).
    """

    etcd_members: dict[str, EtcdMember] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Longhorn restores: how often each volume's restore began, the most restores ever asked of
    # one node at once (held ones included), and the backups whose restore fails (a test's fault)
    timeline: list[tuple[float, str]] = field(default_factory=list)  # (epoch seconds, event)
    restore_starts: dict[str, int] = field(default_factory=dict)
    restore_peak: dict[str, int] = field(default_factory=dict)
    failing_backups: set[str] = field(default_factory=set)
    longhorn: LonghornVersion = LonghornVersion.V1_10
    # Backups whose restored files differ from what was backed up (a test's fault: a check that
    # returns the wrong value), and the commands the lab's kubelet ran: (namespace/pod, argv)
    wrong_content_backups: set[str] = field(default_factory=set)
    pod_runs: list[tuple[str, list[str]]] = field(default_factory=list)
    # CNPG: the recovery Clusters the lab's operator received (as created), the servers whose
    # recovery never finishes and those whose recovered data lacks its newest rows (a test's
    # faults: a check then returns the wrong value), and the commands run through pods/exec
    cnpg_recoveries: list[dict[str, Any]] = field(default_factory=list)
    cnpg_never_ready: set[str] = field(default_factory=set)
    cnpg_lost_rows: dict[str, int] = field(default_factory=dict)  # server -> newest rows missing
    execs: list[tuple[str, list[str]]] = field(default_factory=list)

    def members(self) -> list[EtcdMember]:
        with self.lock:
            return [EtcdMember(**vars(m)) for m in self.etcd_members.values()]

    def member_nodes(self) -> set[str]:
        with self.lock:
            return {m.node for m in self.etcd_members.values()}

    def record(self, text: str) -> None:
        now = datetime.now(UTC)
        with self.lock:
            self.events.append(f"{ts(now)} {text}")
            self.timeline.append((now.timestamp(), text))


def etcd_member(spec: NodeSpec, incarnation: str = "") -> EtcdMember:
    name = f"{spec.name}-{stable_hex(spec.name, incarnation)}"
    member_id = stable_hex("member", spec.name, incarnation, n=16)
    return EtcdMember(id=member_id, name=name, node=spec.name, peer_url=f"https://{spec.ip}:2380")


# ------------------------------------------------------------------- Longhorn volumes


@dataclass(frozen=True)
class VolumeSpec:
    """A Longhorn volume of the seed; replicas are (node, healthy) pairs."""

    pvc: str
    namespace: str
    size_gi: int
    attached_to: str | None
    replicas: tuple[tuple[str, bool], ...]
    backup_age_days: tuple[float, ...]

    @property
    def name(self) -> str:
        return "pvc-" + stable_uuid("pvc", self.namespace, self.pvc)

    @property
    def number_of_replicas(self) -> int:
        return len(self.replicas)


VOLUMES: list[VolumeSpec] = [
    VolumeSpec(
        "web-data",
        "apps",
        5,
        "k3s-agent-1",
        (("k3s-agent-1", True), ("k3s-agent-2", True), ("k3s-server-3", True)),
        (0.2, 1.2, 2.2),
    ),
    VolumeSpec(
        "gitea-data",
        "apps",
        10,
        "k3s-server-3",
        (("k3s-server-1", True), ("k3s-server-3", True), ("k3s-agent-1", True)),
        (0.3, 1.3, 2.3),
    ),
    VolumeSpec(
        "pg-main-1",
        CNPG_NS,
        8,
        "k3s-agent-2",
        (("k3s-agent-1", True), ("k3s-agent-2", True), ("k3s-server-2", True)),
        (0.25, 1.25, 2.25),
    ),
    # Both healthy copies on one node (replica soft anti-affinity): losing k3s-agent-1 loses it.
    VolumeSpec(
        "media",
        "apps",
        20,
        "k3s-agent-1",
        (("k3s-agent-1", True), ("k3s-agent-1", True)),
        (0.4, 1.4, 2.4),
    ),
    # Degraded: one of three replicas failed.
    VolumeSpec(
        "grafana-data",
        "monitoring",
        2,
        "k3s-server-2",
        (("k3s-server-1", False), ("k3s-agent-1", True), ("k3s-agent-2", True)),
        (0.5, 1.5, 2.5),
    ),
    # Detached, and its last backup is three days old.
    VolumeSpec(
        "archive",
        "apps",
        50,
        None,
        (("k3s-server-1", True), ("k3s-server-2", True)),
        (3.0, 4.0, 5.0),
    ),
]


def longhorn_backup_name(volume: str, age_days: float) -> str:
    return f"backup-{stable_hex('backup', volume, str(age_days), n=16)}"


def json_pvc_status(vol: VolumeSpec) -> str:
    return json.dumps(
        {
            "pvName": vol.name,
            "pvStatus": "Bound",
            "namespace": vol.namespace,
            "pvcName": vol.pvc,
            "lastPVCRefAt": "",
            "workloadsStatus": None,
            "lastPodRefAt": "",
        },
        separators=(",", ":"),
    )


# ---------------------------------------------------------------------- CloudNativePG


@dataclass(frozen=True)
class PgSpec:
    name: str
    archiving_ok: bool
    backup_age_days: tuple[float, ...]
    last_wal_age_hours: float
PG_CLUSTERS = [
    PgSpec("pg-main", True, (0.3, 1.3, 2.3), 0.1),
    PgSpec("pg-auth", False, (0.35, 1.35, 2.35), 51.0),
]


def barman_backup_id(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def wal_name(when: datetime, offset: int) -> str:
    """A WAL segment name (timeline 1) that grows with time, as a live server's would."""
    seg = int(when.timestamp() // 300) % 0xFFFFFFFF + offset
    return f"00000001{(seg >> 8) & 0xFFFFFFFF:08X}{seg & 0xFF:08X}"


# --------------------------------------------------------------------- etcd snapshots


def local_snapshot_times(now: datetime) -> list[datetime]:
    """The scheduled local snapshots every server holds (cron 0 */12, retention 5)."""
    base = now.replace(minute=0, second=0, microsecond=0)
    base -= timedelta(hours=base.hour % 12)
    return [base - timedelta(hours=12 * i) for i in range(5)]


def snapshot_name(node: str, when: datetime, base: str = "etcd-snapshot") -> str:
    return f"{base}-{node}-{int(when.timestamp())}"

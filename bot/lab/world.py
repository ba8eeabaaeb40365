"""The lab's homelab: what exists at start (seed objects) and the state only the lab knows.

Two Proxmox hosts; three K3s servers (two on pve1, so losing pve1 loses etcd quorum) and two
agents; Flux, Longhorn, CloudNativePG and K3s objects as their controllers would have left them.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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

    def members(self) -> list[EtcdMember]:
        with self.lock:
            return [EtcdMember(**vars(m)) for m in self.etcd_members.values()]

    def member_nodes(self) -> set[str]:
        with self.lock:
            return {m.node for m in self.etcd_members.values()}

    def record(self, text: str) -> None:
        with self.lock:
            self.events.append(f"{ts(datetime.now(UTC))} {text}")


def etcd_member(spec: NodeSpec, incarnation: str = "") -> EtcdMember:
    name = f"{spec.name}-{stable_hex(spec.name, incarnation)}"
    member_id = stable_hex("member", spec.name, incarnation, n=16)
    return EtcdMember(id=member_id, name=name, node=spec.name, peer_url=f"https://{spec.ip}:2380")


# ------------------------------------------------------------------------ Kubernetes seed


def ready_condition(ready: bool, now: datetime) -> dict[str, Any]:
    if ready:
        return {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": ts(now),
            "lastTransitionTime": ts(now),
        }
    return {
        "type": "Ready",
        "status": "Unknown",
        "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.",
        "lastHeartbeatTime": ts(now),
        "lastTransitionTime": ts(now),
    }


def node_object(
    spec: NodeSpec, member: EtcdMember | None, ready: bool | None, now: datetime
) -> dict[str, Any]:
    """A K3s Node; `ready=None` is a node that just registered (kubelet not ready yet)."""
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "k3s",
        "lab.drbot/proxmox-host": spec.host,
    }
    annotations = {
        "k3s.io/node-args": '["server"]' if spec.server else '["agent"]',
        "k3s.io/internal-ip": spec.ip,
        "k3s.io/hostname": spec.name,
    }
    finalizers = [NODE_FINALIZER]
    if spec.server:
        labels.update(
            {
                "node-role.kubernetes.io/control-plane": "true",
                "node-role.kubernetes.io/master": "true",
                "node-role.kubernetes.io/etcd": "true",
            }
        )
        if member is not None:
            annotations["etcd.k3s.cattle.io/node-name"] = member.name
            annotations["etcd.k3s.cattle.io/node-address"] = spec.ip
        finalizers.append(ETCD_FINALIZER)
    if ready is None:
        conditions = [
            {
                "type": "Ready",
                "status": "False",
                "reason": "KubeletNotReady",
                "message": "container runtime network not ready: NetworkReady=false",
                "lastHeartbeatTime": ts(now),
                "lastTransitionTime": ts(now),
            }
        ]
    else:
        conditions = [ready_condition(ready, now)]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": labels,
            "annotations": annotations,
            "finalizers": finalizers,
        },
        "spec": {"podCIDR": f"10.42.{spec.vmid - 100}.0/24", "providerID": f"k3s://{spec.name}"},
        "status": {
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": spec.ip},
                {"type": "Hostname", "address": spec.name},
            ],
            "nodeInfo": node_info(spec.name, vm_uuid(spec.name)),
            "capacity": {"cpu": "4", "memory": "8148236Ki", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8148236Ki", "pods": "110"},
        },
    }


def node_info(node: str, system_uuid: str, boot: str = "") -> dict[str, str]:
    """status.nodeInfo as a K3s kubelet reports it (every field is required by clients)."""
    return {
        "architecture": "amd64",
        "bootID": stable_uuid("boot", node, boot),
        "containerRuntimeVersion": "containerd://1.7.21-k3s2",
        "kernelVersion": "6.1.0-26-amd64",
        "kubeProxyVersion": K3S_VERSION,
        "kubeletVersion": K3S_VERSION,
        "machineID": stable_hex("machine", node, n=32),
        "operatingSystem": "linux",
        "osImage": "Debian GNU/Linux 12 (bookworm)",
        "systemUUID": system_uuid,
    }


def node_password_secret(node: str, vm_uuid: str) -> dict[str, Any]:
    digest = node_password_hash(vm_uuid)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "k3s.cattle.io/node-password",
        "metadata": {"name": f"{node}.node-password.k3s", "namespace": "kube-system"},
        "data": {"hash": base64.b64encode(digest.encode()).decode()},
    }


def namespaces() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns},
            "status": {"phase": "Active"},
        }
        for ns in (
            "default",
            "kube-system",
            FLUX_NS,
            LONGHORN_NS,
            "cnpg-system",
            CNPG_NS,
            "apps",
            "monitoring",
            "drbot",
        )
    ]


# ---------------------------------------------------------------------------- Flux


def _flux_ready(ok: bool, message: str, when: datetime, generation: int = 1) -> list[dict]:
    return [
        {
            "type": "Ready",
            "status": "True" if ok else "False",
            "reason": "ReconciliationSucceeded" if ok else "UpgradeFailed",
            "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": ts(when),
        }
    ]


REVISION = "main@sha1:5f1c0a3b9e7d24c6a8f0e1d2c3b4a5968776a5b4"
GRAFANA_FAILURE = (
    "Helm upgrade failed for release monitoring/grafana with chart grafana@8.5.1: "
    "context deadline exceeded"
)


def kustomization(
    name: str, path: str, now: datetime, suspend: bool = False, depends: list[str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "interval": "10m0s",
        "path": path,
        "prune": True,
        "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        "suspend": suspend,
    }
    if depends:
        spec["dependsOn"] = [{"name": d} for d in depends]
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": name,
            "namespace": FLUX_NS,
            "generation": 1,
            "finalizers": ["finalizers.fluxcd.io"],
        },
        "spec": spec,
        "status": {
            "observedGeneration": 1,
            "lastAppliedRevision": REVISION,
            "lastAttemptedRevision": REVISION,
            "conditions": _flux_ready(
                True, f"Applied revision: {REVISION}", now - timedelta(minutes=7)
            ),
        },
    }


def helmrelease(
    name: str, ns: str, chart: str, version: str, now: datetime, failing: bool = False
) -> dict[str, Any]:
    message = (
        GRAFANA_FAILURE
        if failing
        else f"Helm upgrade succeeded for release {ns}/{name}.v3 with chart {chart}@{version}"
    )
    hr: dict[str, Any] = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {
            "name": name,
            "namespace": ns,
            "generation": 1,
            "finalizers": ["finalizers.fluxcd.io"],
        },
        "spec": {
            "interval": "30m",
            "releaseName": name,
            "chart": {
                "spec": {
                    "chart": chart,
                    "version": version,
                    "sourceRef": {"kind": "HelmRepository", "name": chart, "namespace": FLUX_NS},
                }
            },
        },
        "status": {
            "observedGeneration": 1,
            "lastAttemptedRevision": version,
            "conditions": _flux_ready(not failing, message, now - timedelta(hours=2)),
        },
    }
    if failing:
        hr["status"]["conditions"].append(
            {
                "type": "Released",
                "status": "False",
                "reason": "UpgradeFailed",
                "message": message,
                "observedGeneration": 1,
                "lastTransitionTime": ts(now - timedelta(hours=2)),
            }
        )
        hr["status"]["failures"] = 3
        hr["status"]["upgradeFailures"] = 3
    return hr


def flux_objects(now: datetime) -> list[dict[str, Any]]:
    git = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "flux-system", "namespace": FLUX_NS, "generation": 1},
        "spec": {
            "interval": "1m0s",
            "url": "ssh://git@github.com/homelab/fleet",
            "ref": {"branch": "main"},
            "secretRef": {"name": "flux-system"},
        },
        "status": {
            "observedGeneration": 1,
            "artifact": {"revision": REVISION, "lastUpdateTime": ts(now)},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Succeeded",
                    "message": f"stored artifact for revision '{REVISION}'",
                    "observedGeneration": 1,
                    "lastTransitionTime": ts(now - timedelta(hours=1)),
                }
            ],
        },
    }
    repos = [
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": chart, "namespace": FLUX_NS, "generation": 1},
            "spec": {"interval": "1h", "url": url},
            "status": {
                "observedGeneration": 1,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Succeeded",
                        "message": "stored artifact",
                        "observedGeneration": 1,
                        "lastTransitionTime": ts(now),
                    }
                ],
            },
        }
        for chart, url in (
            ("longhorn", "https://charts.longhorn.io"),
            ("cloudnative-pg", "https://cloudnative-pg.github.io/charts"),
            ("grafana", "https://grafana.github.io/helm-charts"),
        )
    ]
    return [
        git,
        *repos,
        kustomization("flux-system", "./clusters/homelab", now),
        kustomization("infrastructure", "./infrastructure", now),
        kustomization("apps", "./apps", now, depends=["infrastructure"]),
        kustomization("experiments", "./experiments", now, suspend=True),
        helmrelease("longhorn", LONGHORN_NS, "longhorn", "1.7.2", now),
        helmrelease("cloudnative-pg", "cnpg-system", "cloudnative-pg", "0.22.1", now),
        helmrelease("grafana", "monitoring", "grafana", "8.5.1", now, failing=True),
    ]


# ---------------------------------------------------------------------------- Longhorn


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


def backup_volume_name(volume: str) -> str:
    return f"{volume}-{hashlib.sha256(volume.encode()).hexdigest()[:8]}"


def volume_robustness(vol: VolumeSpec) -> str:
    if vol.attached_to is None:
        return "unknown"
    healthy = sum(1 for _, ok in vol.replicas if ok)
    if healthy == 0:
        return "faulted"
    return "healthy" if healthy >= vol.number_of_replicas else "degraded"


def replica_object(
    volume: str, node: str, index: str, healthy: bool, running: bool, now: datetime
) -> dict[str, Any]:
    healthy_at = ts(now - timedelta(days=20))
    spec = {
        "volumeName": volume,
        "nodeID": node,
        "diskID": stable_uuid("disk", node),
        "diskPath": "/var/lib/longhorn/",
        "dataDirectoryName": f"{volume}-{index[:8]}",
        "engineName": f"{volume}-e-0",
        "healthyAt": healthy_at if healthy else "",
        "lastHealthyAt": healthy_at,
        "failedAt": "" if healthy else ts(now - timedelta(hours=5)),
        "lastFailedAt": "" if healthy else ts(now - timedelta(hours=5)),
        "desireState": "running" if running else "stopped",
        "active": True,
    }
    if not healthy:
        spec["healthyAt"] = healthy_at  # Longhorn keeps healthyAt; failedAt marks the failure
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Replica",
        "metadata": {
            "name": f"{volume}-r-{index[:8]}",
            "namespace": LONGHORN_NS,
            "labels": {
                "longhornvolume": volume,
                "longhornnode": node,
                "longhorndiskuuid": spec["diskID"],
            },
        },
        "spec": spec,
        "status": {
            "currentState": ("running" if running else "stopped") if healthy else "error",
            "ownerID": node,
            "instanceManagerName": f"instance-manager-{stable_hex(node)}",
        },
    }


def longhorn_objects(now: datetime) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "longhorn.io/v1beta2",
            "kind": "BackupTarget",
            "metadata": {"name": "default", "namespace": LONGHORN_NS},
            "spec": {
                "backupTargetURL": BACKUP_TARGET_URL,
                "credentialSecret": "longhorn-s3",
                "pollInterval": "5m0s",
            },
            "status": {"available": True, "conditions": [], "lastSyncedAt": ts(now)},
        },
        {
            "apiVersion": "longhorn.io/v1beta2",
            "kind": "RecurringJob",
            "metadata": {"name": "daily-backup", "namespace": LONGHORN_NS},
            "spec": {
                "name": "daily-backup",
                "task": "backup",
                "cron": "0 2 * * *",
                "retain": 7,
                "groups": ["default"],
                "concurrency": 2,
                "labels": {},
            },
            "status": {"executionCount": 42},
        },
    ]
    for spec in NODES:
        objs.append(longhorn_node(spec.name, now))
    for vol in VOLUMES:
        objs.extend(volume_objects(vol, now))
    return objs


def longhorn_node(name: str, now: datetime) -> dict[str, Any]:
    disk = f"default-disk-{stable_hex('disk', name, n=16)}"
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Node",
        "metadata": {"name": name, "namespace": LONGHORN_NS},
        "spec": {
            "name": name,
            "allowScheduling": True,
            "evictionRequested": False,
            "tags": [],
            "disks": {
                disk: {
                    "path": "/var/lib/longhorn/",
                    "allowScheduling": True,
                    "evictionRequested": False,
                    "storageReserved": 0,
                    "tags": [],
                    "diskType": "filesystem",
                }
            },
        },
        "status": {
            "region": "",
            "zone": "",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "",
                    "message": "",
                    "lastTransitionTime": ts(now),
                },
                {
                    "type": "Schedulable",
                    "status": "True",
                    "reason": "",
                    "message": "",
                    "lastTransitionTime": ts(now),
                },
            ],
            "diskStatus": {
                disk: {
                    "diskUUID": stable_uuid("disk", name),
                    "storageMaximum": 107374182400,
                    "storageAvailable": 64424509440,
                    "conditions": [],
                }
            },
        },
    }


def volume_objects(vol: VolumeSpec, now: datetime) -> list[dict[str, Any]]:
    name = vol.name
    attached = vol.attached_to is not None
    last_backup_age = min(vol.backup_age_days)
    last_backup = longhorn_backup_name(name, last_backup_age)
    pv_name = name
    volume = {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Volume",
        "metadata": {
            "name": name,
            "namespace": LONGHORN_NS,
            "labels": {"recurring-job-group.longhorn.io/default": "enabled"},
        },
        "spec": {
            "size": str(vol.size_gi * 1024**3),
            "numberOfReplicas": vol.number_of_replicas,
            "frontend": "blockdev",
            "dataEngine": "v1",
            "accessMode": "rwo",
            "staleReplicaTimeout": 30,
            "fromBackup": "",
        },
        "status": {
            "state": "attached" if attached else "detached",
            "robustness": volume_robustness(vol),
            "currentNodeID": vol.attached_to or "",
            "ownerID": vol.attached_to or "k3s-server-1",
            "lastBackup": last_backup,
            "lastBackupAt": ts(now - timedelta(days=last_backup_age)),
            "restoreRequired": False,
            "kubernetesStatus": {
                "pvName": pv_name,
                "pvcName": vol.pvc,
                "namespace": vol.namespace,
                "pvStatus": "Bound",
                "workloadsStatus": [],
            },
            "conditions": [
                {
                    "type": "Scheduled",
                    "status": "True",
                    "reason": "",
                    "message": "",
                    "lastTransitionTime": ts(now),
                },
                {
                    "type": "Restore",
                    "status": "False",
                    "reason": "",
                    "message": "",
                    "lastTransitionTime": ts(now),
                },
            ],
        },
    }
    objs = [volume]
    for i, (node, healthy) in enumerate(vol.replicas):
        objs.append(
            replica_object(name, node, stable_hex(name, str(i), n=8), healthy, attached, now)
        )
    if attached:
        objs.append(
            {
                "apiVersion": "longhorn.io/v1beta2",
                "kind": "Engine",
                "metadata": {
                    "name": f"{name}-e-0",
                    "namespace": LONGHORN_NS,
                    "labels": {"longhornvolume": name, "longhornnode": vol.attached_to},
                },
                "spec": {"volumeName": name, "nodeID": vol.attached_to, "desireState": "running"},
                "status": {"currentState": "running", "ownerID": vol.attached_to},
            }
        )
    for age in vol.backup_age_days:
        objs.append(longhorn_backup_object(vol, age, now))
    objs.append(
        {
            "apiVersion": "longhorn.io/v1beta2",
            "kind": "BackupVolume",
            "metadata": {
                "name": backup_volume_name(name),
                "namespace": LONGHORN_NS,
                "labels": {"backup-target": "default", "backup-volume": name},
            },
            "spec": {"volumeName": name, "backupTargetName": "default"},
            "status": {
                "lastBackupName": last_backup,
                "lastBackupAt": ts(now - timedelta(days=last_backup_age)),
                "lastSyncedAt": ts(now),
                "size": str(vol.size_gi * 1024**3),
            },
        }
    )
    objs.append(pvc_object(vol))
    objs.append(pv_object(vol))
    return objs


def longhorn_backup_object(vol: VolumeSpec, age: float, now: datetime) -> dict[str, Any]:
    backup = longhorn_backup_name(vol.name, age)
    when = now - timedelta(days=age)
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Backup",
        "metadata": {
            "name": backup,
            "namespace": LONGHORN_NS,
            "labels": {"backup-volume": vol.name, "backup-target": "default"},
        },
        "spec": {
            "labels": {"KubernetesStatus": "", "longhorn.io/volume-access-mode": "rwo"},
            "snapshotName": f"snap-{stable_hex(backup)}",
        },
        "status": {
            "state": "Completed",
            "progress": 100,
            "url": f"{BACKUP_TARGET_URL}?backup={backup}&volume={vol.name}",
            "snapshotName": f"snap-{stable_hex(backup)}",
            "snapshotCreatedAt": ts(when),
            "backupCreatedAt": ts(when),
            "lastSyncedAt": ts(now),
            "size": str(vol.size_gi * 1024**3 // 4),
            "volumeName": vol.name,
            "volumeSize": str(vol.size_gi * 1024**3),
            "volumeCreated": ts(now - timedelta(days=90)),
            "backupTargetName": "default",
            "error": "",
            "labels": {"KubernetesStatus": json_pvc_status(vol)},
        },
    }


def json_pvc_status(vol: VolumeSpec) -> str:
    import json

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


def pvc_object(vol: VolumeSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": vol.pvc,
            "namespace": vol.namespace,
            "annotations": {
                "pv.kubernetes.io/bind-completed": "yes",
                "volume.kubernetes.io/storage-provisioner": "driver.longhorn.io",
            },
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "longhorn",
            "resources": {"requests": {"storage": f"{vol.size_gi}Gi"}},
            "volumeName": vol.name,
        },
        "status": {"phase": "Bound", "capacity": {"storage": f"{vol.size_gi}Gi"}},
    }


def pv_object(vol: VolumeSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": vol.name},
        "spec": {
            "capacity": {"storage": f"{vol.size_gi}Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "longhorn",
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {"name": vol.pvc, "namespace": vol.namespace},
            "csi": {"driver": "driver.longhorn.io", "volumeHandle": vol.name, "fsType": "ext4"},
        },
        "status": {"phase": "Bound"},
    }


# ------------------------------------------------------------------------ CloudNativePG


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
WAL_FAILURE = (
    "unexpected failure invoking barman-cloud-wal-archive: exit status 4: "
    "ERROR: Barman cloud WAL archiver exception: An error occurred (AccessDenied) "
    "when calling the PutObject operation: Access Denied"
)


def barman_backup_id(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def cnpg_objects(now: datetime) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for pg in PG_CLUSTERS:
        times = [now - timedelta(days=age) for age in pg.backup_age_days]
        last = max(times)
        archiving = (
            {
                "type": "ContinuousArchiving",
                "status": "True",
                "reason": "ContinuousArchivingSuccess",
                "message": "Continuous archiving is working",
                "lastTransitionTime": ts(now - timedelta(days=10)),
            }
            if pg.archiving_ok
            else {
                "type": "ContinuousArchiving",
                "status": "False",
                "reason": "ContinuousArchivingFailing",
                "message": WAL_FAILURE,
                "lastTransitionTime": ts(now - timedelta(hours=pg.last_wal_age_hours)),
            }
        )
        objs.append(
            {
                "apiVersion": "postgresql.cnpg.io/v1",
                "kind": "Cluster",
                "metadata": {"name": pg.name, "namespace": CNPG_NS, "generation": 1},
                "spec": {
                    "instances": 1,
                    "imageName": "ghcr.io/cloudnative-pg/postgresql:16.4",
                    "storage": {"size": "8Gi", "storageClass": "longhorn"},
                    "backup": {
                        "retentionPolicy": "7d",
                        "barmanObjectStore": {
                            "destinationPath": f"s3://{BUCKETS['cnpg']}/",
                            "endpointURL": "http://s3.lab.invalid",
                            "s3Credentials": {
                                "accessKeyId": {"name": "cnpg-s3", "key": "ACCESS_KEY_ID"},
                                "secretAccessKey": {"name": "cnpg-s3", "key": "ACCESS_SECRET_KEY"},
                            },
                            "wal": {"compression": "gzip"},
                        },
                    },
                },
                "status": {
                    "phase": "Cluster in healthy state",
                    "instances": 1,
                    "readyInstances": 1,
                    "currentPrimary": f"{pg.name}-1",
                    "latestGeneratedNode": 1,
                    "firstRecoverabilityPoint": ts(min(times)),
                    "lastSuccessfulBackup": ts(last),
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "ClusterIsReady",
                            "message": "Cluster is Ready",
                            "lastTransitionTime": ts(now),
                        },
                        archiving,
                        {
                            "type": "LastBackupSucceeded",
                            "status": "True",
                            "reason": "LastBackupSucceeded",
                            "message": "",
                            "lastTransitionTime": ts(last),
                        },
                    ],
                },
            }
        )
        objs.append(
            {
                "apiVersion": "postgresql.cnpg.io/v1",
                "kind": "ScheduledBackup",
                "metadata": {"name": f"{pg.name}-daily", "namespace": CNPG_NS},
                "spec": {
                    "schedule": "0 0 1 * * *",
                    "cluster": {"name": pg.name},
                    "method": "barmanObjectStore",
                    "backupOwnerReference": "self",
                },
                "status": {
                    "lastCheckTime": ts(now),
                    "lastScheduleTime": ts(last),
                    "nextScheduleTime": ts(last + timedelta(days=1)),
                },
            }
        )
        for when in times:
            backup_id = barman_backup_id(when)
            objs.append(
                {
                    "apiVersion": "postgresql.cnpg.io/v1",
                    "kind": "Backup",
                    "metadata": {
                        "name": f"{pg.name}-daily-{backup_id.lower()}",
                        "namespace": CNPG_NS,
                    },
                    "spec": {"cluster": {"name": pg.name}, "method": "barmanObjectStore"},
                    "status": {
                        "phase": "completed",
                        "method": "barmanObjectStore",
                        "backupId": backup_id,
                        "backupName": f"backup-{backup_id}",
                        "serverName": pg.name,
                        "destinationPath": f"s3://{BUCKETS['cnpg']}/",
                        "startedAt": ts(when),
                        "stoppedAt": ts(when + timedelta(minutes=3)),
                        "beginWal": wal_name(when, 0),
                        "endWal": wal_name(when, 1),
                    },
                }
            )
    return objs


def wal_name(when: datetime, offset: int) -> str:
    """A WAL segment name (timeline 1) that grows with time, as a live server's would."""
    seg = int(when.timestamp() // 300) % 0xFFFFFFFF + offset
    return f"00000001{(seg >> 8) & 0xFFFFFFFF:08X}{seg & 0xFF:08X}"


# ------------------------------------------------------------------------ workloads


def _pod(
    name: str,
    ns: str,
    node: str,
    labels: dict[str, str],
    owner: tuple[str, str],
    volumes: list[dict] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": owner[0],
                    "name": owner[1],
                    "controller": True,
                    "uid": stable_uuid(ns, owner[1]),
                }
            ],
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "image": "busybox"}],
            "volumes": volumes or [],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.42.0.{abs(hash(name)) % 250 + 2}",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def workload_objects(now: datetime) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for spec in NODES:
        suffix = stable_hex("ds", spec.name, n=5)
        objs.append(
            _pod(
                f"longhorn-manager-{suffix}",
                LONGHORN_NS,
                spec.name,
                {"app": "longhorn-manager"},
                ("DaemonSet", "longhorn-manager"),
            )
        )
    objs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "longhorn-manager", "namespace": LONGHORN_NS},
            "spec": {"selector": {"matchLabels": {"app": "longhorn-manager"}}},
            "status": {"desiredNumberScheduled": len(NODES), "numberReady": len(NODES)},
        }
    )
    web = next(v for v in VOLUMES if v.pvc == "web-data")
    objs.append(
        _pod(
            "web-7d9f8b6c5-x2x7q",
            "apps",
            "k3s-agent-1",
            {"app": "web"},
            ("ReplicaSet", "web-7d9f8b6c5"),
            [{"name": "data", "persistentVolumeClaim": {"claimName": web.pvc}}],
        )
    )
    objs.append(
        _pod(
            "gitea-0",
            "apps",
            "k3s-server-3",
            {"app": "gitea"},
            ("StatefulSet", "gitea"),
            [{"name": "data", "persistentVolumeClaim": {"claimName": "gitea-data"}}],
        )
    )
    objs.append(
        _pod(
            "pg-main-1",
            CNPG_NS,
            "k3s-agent-2",
            {"cnpg.io/cluster": "pg-main"},
            ("Cluster", "pg-main"),
            [{"name": "pgdata", "persistentVolumeClaim": {"claimName": "pg-main-1"}}],
        )
    )
    objs.append(
        _pod(
            "pg-auth-1",
            CNPG_NS,
            "k3s-server-1",
            {"cnpg.io/cluster": "pg-auth"},
            ("Cluster", "pg-auth"),
            [],
        )
    )
    objs.append(
        _pod(
            "coredns-6799fbcd5-7kq2m",
            "kube-system",
            "k3s-server-1",
            {"k8s-app": "kube-dns"},
            ("ReplicaSet", "coredns-6799fbcd5"),
        )
    )
    objs.append(
        _pod(
            "grafana-5c9d7f7b8-q9vtn",
            "monitoring",
            "k3s-server-2",
            {"app": "grafana"},
            ("ReplicaSet", "grafana-5c9d7f7b8"),
            [{"name": "storage", "persistentVolumeClaim": {"claimName": "grafana-data"}}],
        )
    )
    objs.append(
        _pod(
            "drbot-worker-6b7c9d-4hx2p",
            "drbot",
            "k3s-agent-2",
            {"app": "drbot"},
            ("ReplicaSet", "drbot-worker-6b7c9d"),
        )
    )
    # Blocks evicting the only web pod: minAvailable 1 of 1.
    objs.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "apps", "generation": 1},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            "status": {
                "currentHealthy": 1,
                "desiredHealthy": 1,
                "disruptionsAllowed": 0,
                "expectedPods": 1,
                "observedGeneration": 1,
            },
        }
    )
    objs.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "coredns", "namespace": "kube-system", "generation": 1},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}}},
            "status": {
                "currentHealthy": 1,
                "desiredHealthy": 0,
                "disruptionsAllowed": 1,
                "expectedPods": 1,
                "observedGeneration": 1,
            },
        }
    )
    return objs


# --------------------------------------------------------------------- etcd snapshots


def local_snapshot_times(now: datetime) -> list[datetime]:
    """The scheduled local snapshots every server holds (cron 0 */12, retention 5)."""
    base = now.replace(minute=0, second=0, microsecond=0)
    base -= timedelta(hours=base.hour % 12)
    return [base - timedelta(hours=12 * i) for i in range(5)]


def snapshot_name(node: str, when: datetime, base: str = "etcd-snapshot") -> str:
    return f"{base}-{node}-{int(when.timestamp())}"


def etcd_snapshot_objects(now: datetime, size: int) -> list[dict[str, Any]]:
    objs = []
    for spec in NODES:
        if not spec.server:
            continue
        for when in local_snapshot_times(now):
            name = snapshot_name(spec.name, when)
            objs.append(etcd_snapshot_file(spec.name, name, when, size))
    return objs


def etcd_snapshot_file(node: str, name: str, when: datetime, size: int) -> dict[str, Any]:
    return {
        "apiVersion": "k3s.cattle.io/v1",
        "kind": "ETCDSnapshotFile",
        "metadata": {
            "name": f"local-{name}-{stable_hex(node, name, n=6)}",
            "labels": {"etcd.k3s.cattle.io/snapshot-storage-node": node},
            "annotations": {"etcd.k3s.cattle.io/snapshot-token-hash": stable_hex("token", n=16)},
        },
        "spec": {
            "snapshotName": name,
            "nodeName": node,
            "location": f"file:///{SNAPSHOT_DIR}/{name}",
            "metadata": {},
        },
        "status": {"creationTime": ts(when), "readyToUse": True, "size": str(size)},
    }


def vm_uuid(node: str, incarnation: str = "") -> str:
    return stable_uuid("vm", node, incarnation)


def seed_objects(
    now: datetime, members: dict[str, EtcdMember], snapshot_size: int
) -> list[dict[str, Any]]:
    """Every Kubernetes object of the lab at start."""
    objs = namespaces()
    for spec in NODES:
        objs.append(node_object(spec, members.get(spec.name), True, now))
        objs.append(node_password_secret(spec.name, vm_uuid(spec.name)))
    objs += flux_objects(now)
    objs += longhorn_objects(now)
    objs += cnpg_objects(now)
    objs += workload_objects(now)
    objs += etcd_snapshot_objects(now, snapshot_size)
    return objs

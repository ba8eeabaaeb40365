"""The K3s part of the seed: namespaces, a Node and its node-password secret per VM, and the
ETCDSnapshotFile of every local etcd snapshot the servers hold.

`ready_condition` is also what the lab's node controller writes when a kubelet comes and goes.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from lab.world import (
    CNPG_NS,
    ETCD_FINALIZER,
    FLUX_NS,
    K3S_VERSION,
    LONGHORN_NS,
    NODE_FINALIZER,
    NODES,
    SNAPSHOT_DIR,
    EtcdMember,
    NodeSpec,
    local_snapshot_times,
    node_password_hash,
    snapshot_name,
    stable_hex,
    stable_uuid,
    ts,
    vm_uuid,
)


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


# --------------------------------------------------------------------- etcd snapshots


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

"""K3s's embedded etcd: a server running K3s joins as a member (a new etcd starts on the
cluster-init server only), K3s's RemovePeer removes one only while etcd has quorum, and the
datastore, with every object that lives only in it, is gone once every server's VM is destroyed.
"""

from __future__ import annotations

import uuid
from typing import Any

from lab import world
from lab.controllers.base import (
    R_ETCD_SNAPSHOTS,
    R_GITREPOSITORIES,
    R_KUSTOMIZATIONS,
    R_LH_BACKUPS,
    R_LH_BACKUPTARGETS,
    R_LH_BACKUPVOLUMES,
    R_LH_ENGINES,
    R_LH_NODES,
    R_LH_REPLICAS,
    R_LH_SNAPSHOTS,
    R_LH_VOLUMES,
    R_NODES,
    R_PODS,
    R_PVCS,
    R_PVS,
    R_SECRETS,
    ControllerBase,
)
from lab.seed.flux import BOOTSTRAP_NAME

# What lives only in the cluster's datastore and is gone with it. Flux's Kustomizations come back
# when `flux bootstrap` has re-created `flux-system` and it applies the fleet repository
# (lab.controllers.flux); Flux's other objects and CNPG's are kept (they would come back from
# Git with the infrastructure layer). Longhorn's backup objects come back from the store only when
# Longhorn's backup target has synced again (lab.controllers.longhorn_sync).
DATASTORE_ONLY = [R_PODS, R_PVCS, R_PVS, R_LH_VOLUMES, R_LH_REPLICAS, R_LH_ENGINES, R_LH_NODES,
                  R_LH_SNAPSHOTS, R_LH_BACKUPS, R_LH_BACKUPVOLUMES, R_LH_BACKUPTARGETS,
                  R_ETCD_SNAPSHOTS, R_SECRETS, R_NODES, R_KUSTOMIZATIONS, R_GITREPOSITORIES]


def lost_with_datastore(res: Any, obj: dict[str, Any]) -> bool:
    """Whether `obj`, one of a DATASTORE_ONLY resource, is gone with the datastore."""
    if res == R_GITREPOSITORIES:
        meta = obj["metadata"]
        return (meta.get("namespace"), meta["name"]) == (world.FLUX_NS, BOOTSTRAP_NAME)
    return True


class EtcdController(ControllerBase):
    """K3s's managed-etcd controller and the etcd cluster's membership."""

    def quorum(self) -> tuple[int, int]:
        with self.state.lock:
            members = list(self.state.etcd_members.values())
        healthy = sum(1 for m in members if m.healthy)
        return healthy, len(members) // 2 + 1

    async def remove_member(self, node: str, annotations: dict[str, str]) -> bool:
        """K3s's onRemove, then RemovePeer: it needs the member name of the Node's
        `etcd.k3s.cattle.io/node-name` annotation (else it errors and the finalizer stays; k3s
        pkg/etcd/member_controller.go) and works only while etcd has quorum."""
        if not annotations.get("etcd.k3s.cattle.io/node-name"):
            if self.due(("name-note", node), 0):
                self.state.record(f"etcd: node name annotation for node {node} not found")
            return False
        healthy, needed = self.quorum()
        with self.state.lock:
            member = self.state.etcd_members.get(node)
        if member is None:
            return True
        if healthy < needed:
            if self.due(("quorum-note", node), 0):
                self.state.record(
                    f"etcd: cannot remove member {member.name}: no quorum "
                    f"({healthy} of {needed} needed healthy)"
                )
            return False
        with self.state.lock:
            self.state.etcd_members.pop(node, None)
        self.forget("quorum-note", node)
        self.state.record(
            f"etcd: removed member {member.name} "
            f"({annotations.get('etcd.k3s.cattle.io/node-address', '')})"
        )
        return True

    async def etcd_membership(self) -> None:
        with self.state.lock:
            for member in self.state.etcd_members.values():
                vm = self.vm_for(member.node)
                member.healthy = vm is not None and vm.status == "running"
        for node in self.kube.live(R_NODES):
            name = node["metadata"]["name"]
            labels = node["metadata"].get("labels") or {}
            if (
                labels.get("node-role.kubernetes.io/etcd") != "true"
                or node["metadata"].get("deletionTimestamp")
                or name in self.state.member_nodes()
                or not self.k3s_running(name)
            ):
                continue
            healthy, needed = self.quorum()
            if not self.state.member_nodes():
                if not world.node_spec(name).cluster_init:
                    continue  # a new etcd starts on the cluster-init server only
            elif healthy < needed:
                continue  # a server cannot join an etcd cluster without quorum
            member = world.etcd_member(world.node_spec(name), uuid.uuid4().hex)
            with self.state.lock:
                self.state.etcd_members[name] = member
            self.state.record(f"etcd: added member {member.name}")
            await self.patch(
                R_NODES,
                None,
                name,
                {
                    "metadata": {
                        "annotations": {
                            "etcd.k3s.cattle.io/node-name": member.name,
                            "etcd.k3s.cattle.io/node-address": world.node_spec(name).ip,
                        }
                    }
                },
            )

    async def datastore(self) -> None:
        """Every server's VM destroyed: etcd (the datastore) is gone with their disks, and the
        cluster's objects with it; the next cluster-init server starts a new, empty etcd."""
        servers = [s.name for s in world.NODES if s.server]
        if any(self.vm_for(n) is not None for n in servers):
            self.datastore_lost = False
            return
        if self.datastore_lost:
            return
        self.datastore_lost = True
        with self.state.lock:
            self.state.etcd_members.clear()
        for res in DATASTORE_ONLY:
            for obj in self.kube.live(res):
                meta = obj["metadata"]
                if not lost_with_datastore(res, obj):
                    continue
                if meta.get("finalizers"):
                    await self.patch(res, meta.get("namespace"), meta["name"],
                                     {"metadata": {"finalizers": None}})
                await self.delete(res, meta.get("namespace"), meta["name"])
        self.joined.clear()
        self.timers.clear()
        self.state.record("every server VM destroyed: the cluster's datastore is gone")

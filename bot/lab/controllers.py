"""The lab's controllers: what kubelet, K3s, Longhorn and Flux would do in reaction to changes.

They run as one asyncio task on the lab loop (the loop that serves kmock and fakepve), read the
emulator's and fakepve's state directly, and write to Kubernetes through the emulator's HTTP API,
so every change reaches watchers and the request log like a real controller's would. Every delay
is a `Timings` field, scaled by the lab's `time_scale`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock

from bot.lab import world
from bot.lab.kube import LabKube, now_iso, status_body

log = logging.getLogger("drbot.lab")

CONTROLLER_HEADER = "X-Drbot-Lab-Controller"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"

R_NODES = kmock.resource("", "v1", "nodes")
R_PODS = kmock.resource("", "v1", "pods")
R_SECRETS = kmock.resource("", "v1", "secrets")
R_PDBS = kmock.resource("policy", "v1", "poddisruptionbudgets")
R_LH_NODES = kmock.resource("longhorn.io", "v1beta2", "nodes")
R_LH_VOLUMES = kmock.resource("longhorn.io", "v1beta2", "volumes")
R_LH_REPLICAS = kmock.resource("longhorn.io", "v1beta2", "replicas")
R_LH_ENGINES = kmock.resource("longhorn.io", "v1beta2", "engines")
R_PVCS = kmock.resource("", "v1", "persistentvolumeclaims")
R_PVS = kmock.resource("", "v1", "persistentvolumes")
R_ETCD_SNAPSHOTS = kmock.resource("k3s.cattle.io", "v1", "etcdsnapshotfiles")
WORKLOADS = [
    kmock.resource("apps", "v1", "deployments"),
    kmock.resource("apps", "v1", "statefulsets"),
]
# What lives only in the cluster's datastore and is gone with it (Flux objects, Longhorn's
# backup objects and CNPG's come back from Git and the backup target, so the lab keeps them).
DATASTORE_ONLY = [R_PODS, R_PVCS, R_PVS, R_LH_VOLUMES, R_LH_REPLICAS, R_LH_ENGINES, R_LH_NODES,
                  R_ETCD_SNAPSHOTS, R_SECRETS, R_NODES]
FLUX = [
    kmock.resource("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
    kmock.resource("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
    kmock.resource("source.toolkit.fluxcd.io", "v1", "gitrepositories"),
    kmock.resource("source.toolkit.fluxcd.io", "v1", "helmrepositories"),
    kmock.resource("source.toolkit.fluxcd.io", "v1", "helmcharts"),
]
FAILING_RELEASES = {("monitoring", "grafana")}


@dataclass(frozen=True)
class Timings:
    """Seconds before the world reacts, at time_scale 1 (the real systems' orders of magnitude)."""

    tick: float = 0.2
    node_ready: float = 3.0  # kubelet registered -> Ready
    node_not_ready: float = 4.0  # VM down -> NotReady (node-monitor-grace-period)
    node_finalizer: float = 0.5  # K3s node controller: node-password secret, finalizer
    etcd_remove: float = 3.0  # K3s managed-etcd-controller: RemovePeer, finalizer
    pod_gc: float = 1.0  # pods bound to a deleted node are removed
    replica_fail: float = 2.0  # replicas on a NotReady node are marked failed
    replica_rebuild: float = 3.0  # a new replica on a joined node becomes healthy
    flux_reconcile: float = 1.5  # annotation seen -> reconciled
    volume_restore: float = 2.0  # a Longhorn volume created with fromBackup -> restored

    def scaled(self, factor: float) -> Timings:
        values = {f.name: getattr(self, f.name) * factor for f in fields(self)}
        values["tick"] = max(0.02, min(self.tick, values["tick"]))
        return replace(self, **values)


def api_path(obj_or_res: Any, namespace: str | None, name: str | None = None) -> str:
    res = obj_or_res
    base = f"/api/{res.version}" if res.group == "" else f"/apis/{res.group}/{res.version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{res.plural}"
    return f"{base}/{name}" if name else base


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return {}


def vm_uuid_of(vm: Any) -> str:
    for part in str(vm.config.get("smbios1", "")).split(","):
        if part.startswith("uuid="):
            return part[5:]
    return ""


class Controllers:
    """Kubelet, K3s, Longhorn and Flux, reduced to what drbot's runbooks meet."""

    def __init__(
        self,
        kube: LabKube,
        pve: Any,
        state: world.WorldState,
        timings: Timings,
        sshds: dict[str, Any],
        vm_root: Path,
    ) -> None:
        self.kube = kube
        self.sshds = sshds
        self.vm_root = vm_root
        self.pve = pve
        self.state = state
        self.t = timings
        self.timers: dict[tuple[str, ...], float] = {}
        self.joined: set[str] = set()
        self.node_uids: dict[str, str] = {}
        self.scanned = False
        self.datastore_lost = False
        self.task: asyncio.Task[None] | None = None
        kube.admissions.append(self.admit)
        kube[kmock.method.POST, kmock.subresource("eviction")] << self.evict

    # ------------------------------------------------------------------ plumbing

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name="drbot-lab-controllers"
        )

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a controller keeps running, as the real ones do
                log.exception("lab controller step failed")
            await asyncio.sleep(self.t.tick)

    async def step(self) -> None:
        self.ssh_endpoints()
        await self.datastore()
        await self.node_lifecycle()
        await self.node_removal()
        await self.etcd_membership()
        await self.longhorn()
        await self.storage_binding()
        await self.workloads()
        await self.flux()

    def due(self, key: tuple[str, ...], delay: float) -> bool:
        """True once `delay` seconds have passed since this key was first asked about."""
        now = time.monotonic()
        start = self.timers.setdefault(key, now)
        return now - start >= delay

    def forget(self, *prefix: str) -> None:
        for key in [k for k in self.timers if k[: len(prefix)] == prefix]:
            del self.timers[key]

    async def _write(self, method: str, path: str, body: Any = None) -> int:
        headers = {CONTROLLER_HEADER: "1"}
        if method == "PATCH":
            headers["Content-Type"] = "application/merge-patch+json"
        async with self.kube.request(method, path, json=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def patch(self, res: Any, ns: str | None, name: str, body: dict[str, Any]) -> int:
        return await self._write("PATCH", api_path(res, ns, name), body)

    async def delete(self, res: Any, ns: str | None, name: str) -> int:
        return await self._write("DELETE", api_path(res, ns, name))

    async def create(self, res: Any, ns: str | None, body: dict[str, Any]) -> int:
        return await self._write("POST", api_path(res, ns), body)

    # -------------------------------------------------------------- VM side

    def ssh_endpoints(self) -> None:
        """A VM's sshd answers while the VM runs, with the host key its last boot made."""
        for node, sshd in self.sshds.items():
            vm = self.vm_for(node)
            running = vm is not None and vm.status == "running"
            if running and not sshd.alive():
                sshd.start()
                self.state.record(f"vm {node}: sshd up")
            elif running and sshd.key_changed():
                sshd.reload()
                self.state.record(f"vm {node}: sshd reloaded its new host key")
            elif not running and sshd.alive():
                sshd.stop()
                self.state.record(f"vm {node}: sshd down")
            if vm is None:
                # a destroyed VM's disk is gone, and the etcd snapshots on it
                snapshots = self.vm_root / node / world.SNAPSHOT_DIR
                for path in snapshots.glob("*") if snapshots.is_dir() else []:
                    path.unlink()

    # -------------------------------------------------------------- node health

    def vm_for(self, node: str) -> Any:
        try:
            spec = world.node_spec(node)
        except KeyError:
            return None
        vm = self.pve.vm(spec.vmid)
        return vm if vm is not None and vm.name == node else None

    def k3s_running(self, node: str) -> bool:
        """The VM runs and K3s on it was joined with this VM's node password."""
        vm = self.vm_for(node)
        if vm is None or vm.status != "running":
            return False
        secret = self.kube.current(R_SECRETS, "kube-system", f"{node}.node-password.k3s")
        if secret is None:
            return False
        stored = base64.b64decode(secret.get("data", {}).get("hash", "")).decode(errors="replace")
        return stored == world.node_password_hash(vm_uuid_of(vm))

    async def node_lifecycle(self) -> None:
        for node in self.kube.live(R_NODES):
            name = node["metadata"]["name"]
            uid = node["metadata"].get("uid", "")
            if self.scanned and self.node_uids.get(name) != uid:
                self.joined.add(name)
                self.state.record(f"node {name} registered")
            self.node_uids[name] = uid
            if node["metadata"].get("deletionTimestamp"):
                continue
            ready = condition(node, "Ready").get("status") == "True"
            up = self.k3s_running(name)
            if up and not ready:
                self.forget("down", name)
                if self.due(("up", name), self.t.node_ready):
                    await self.set_ready(node, True)
                    self.state.record(f"node {name} Ready")
            elif not up and ready:
                self.forget("up", name)
                if self.due(("down", name), self.t.node_not_ready):
                    await self.set_ready(node, False)
                    self.state.record(f"node {name} NotReady (VM down)")
            else:
                self.forget("up", name)
                self.forget("down", name)
        self.scanned = True

    async def set_ready(self, node: dict[str, Any], ready: bool) -> None:
        now = datetime.now(UTC)
        taints = [
            t
            for t in node.get("spec", {}).get("taints") or []
            if not t.get("key", "").startswith("node.kubernetes.io/")
        ]
        if not ready:
            taints += [
                {"key": "node.kubernetes.io/unreachable", "effect": effect, "timeAdded": now_iso()}
                for effect in ("NoSchedule", "NoExecute")
            ]
        others = [
            c for c in node.get("status", {}).get("conditions") or [] if c.get("type") != "Ready"
        ]
        await self.patch(
            R_NODES,
            None,
            node["metadata"]["name"],
            {
                "spec": {"taints": taints or None},
                "status": {"conditions": [*others, world.ready_condition(ready, now)]},
            },
        )

    # ------------------------------------------------------------ node removal

    def quorum(self) -> tuple[int, int]:
        with self.state.lock:
            members = list(self.state.etcd_members.values())
        healthy = sum(1 for m in members if m.healthy)
        return healthy, len(members) // 2 + 1

    async def node_removal(self) -> None:
        live = set()
        for node in self.kube.live(R_NODES):
            name = node["metadata"]["name"]
            live.add(name)
            meta = node["metadata"]
            if not meta.get("deletionTimestamp"):
                continue
            finalizers = list(meta.get("finalizers") or [])
            if world.NODE_FINALIZER in finalizers and self.due(
                ("fin", name), self.t.node_finalizer
            ):
                await self.delete(R_SECRETS, "kube-system", f"{name}.node-password.k3s")
                finalizers.remove(world.NODE_FINALIZER)
                await self.patch(R_NODES, None, name, {"metadata": {"finalizers": finalizers}})
            if (
                world.ETCD_FINALIZER in finalizers
                and self.due(("etcd-rm", name), self.t.etcd_remove)
                and await self.remove_member(name, meta.get("annotations") or {})
            ):
                finalizers.remove(world.ETCD_FINALIZER)
                await self.patch(R_NODES, None, name, {"metadata": {"finalizers": finalizers}})
        for pod in self.kube.live(R_PODS):
            node = pod.get("spec", {}).get("nodeName")
            if (
                node
                and node not in live
                and self.due(("podgc", pod["metadata"]["uid"]), self.t.pod_gc)
            ):
                await self.delete(R_PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        for key in [k for k in self.timers if k[0] in ("fin", "etcd-rm") and k[1] not in live]:
            del self.timers[key]

    async def remove_member(self, node: str, annotations: dict[str, str]) -> bool:
        """K3s's RemovePeer: works only while etcd has quorum (else the finalizer stays)."""
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

    # ---------------------------------------------------------- etcd membership

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

    # ------------------------------------------------------------------ Longhorn

    async def longhorn(self) -> None:
        nodes = {
            n["metadata"]["name"]: n
            for n in self.kube.live(R_NODES)
            if not n["metadata"].get("deletionTimestamp")
        }
        ready = {name for name, n in nodes.items() if condition(n, "Ready").get("status") == "True"}
        await self.longhorn_nodes(nodes, ready)
        await self.fail_replicas(nodes, ready)
        await self.move_engines(nodes, ready)
        await self.rebuild(ready)
        await self.restores(ready)
        await self.robustness()

    async def longhorn_nodes(self, nodes: dict[str, dict], ready: set[str]) -> None:
        lh_nodes = {n["metadata"]["name"]: n for n in self.kube.live(R_LH_NODES)}
        for name in ready - set(lh_nodes):
            await self.create(
                R_LH_NODES, world.LONGHORN_NS, world.longhorn_node(name, datetime.now(UTC))
            )
            self.state.record(f"longhorn: node {name} registered")
        for name, lh in lh_nodes.items():
            if name not in nodes:
                want = ("False", "KubernetesNodeGone", f"Kubernetes node {name} has been deleted")
            elif name not in ready:
                want = (
                    "False",
                    "KubernetesNodeNotReady",
                    f"Kubernetes node {name} not ready: Unknown",
                )
            else:
                want = ("True", "", "")
            cond = condition(lh, "Ready")
            if (cond.get("status"), cond.get("reason", "")) != want[:2]:
                others = [
                    c
                    for c in lh.get("status", {}).get("conditions") or []
                    if c.get("type") != "Ready"
                ]
                new = {
                    "type": "Ready",
                    "status": want[0],
                    "reason": want[1],
                    "message": want[2],
                    "lastTransitionTime": now_iso(),
                }
                await self.patch(
                    R_LH_NODES, world.LONGHORN_NS, name, {"status": {"conditions": [new, *others]}}
                )

    async def fail_replicas(self, nodes: dict[str, dict], ready: set[str]) -> None:
        for rep in self.kube.live(R_LH_REPLICAS):
            spec = rep.get("spec", {})
            node = spec.get("nodeID", "")
            if node in ready or spec.get("failedAt"):
                self.forget("repfail", rep["metadata"]["name"])
                continue
            if self.due(("repfail", rep["metadata"]["name"]), self.t.replica_fail):
                stamp = now_iso()
                await self.patch(
                    R_LH_REPLICAS,
                    world.LONGHORN_NS,
                    rep["metadata"]["name"],
                    {
                        "spec": {"failedAt": stamp, "lastFailedAt": stamp},
                        "status": {"currentState": "error"},
                    },
                )

    async def move_engines(self, nodes: dict[str, dict], ready: set[str]) -> None:
        """A volume attached to a deleted node is re-attached where its workload moves."""
        replicas = self.kube.live(R_LH_REPLICAS)
        for vol in self.kube.live(R_LH_VOLUMES):
            name = vol["metadata"]["name"]
            current = vol.get("status", {}).get("currentNodeID") or ""
            if vol.get("status", {}).get("state") != "attached" or current in nodes:
                continue
            targets = sorted(
                r["spec"]["nodeID"]
                for r in replicas
                if r["spec"].get("volumeName") == name
                and r["spec"]["nodeID"] in ready
                and healthy(r)
            )
            if not targets:
                continue
            await self.patch(
                R_LH_VOLUMES,
                world.LONGHORN_NS,
                name,
                {"status": {"currentNodeID": targets[0], "ownerID": targets[0]}},
            )
            for eng in self.kube.live(R_LH_ENGINES):
                if eng["spec"].get("volumeName") == name:
                    await self.patch(
                        R_LH_ENGINES,
                        world.LONGHORN_NS,
                        eng["metadata"]["name"],
                        {
                            "metadata": {"labels": {"longhornnode": targets[0]}},
                            "spec": {"nodeID": targets[0]},
                            "status": {"ownerID": targets[0]},
                        },
                    )
            self.state.record(f"longhorn: volume {name} re-attached on {targets[0]}")

    async def rebuild(self, ready: set[str]) -> None:
        """Replicas of attached volumes are rebuilt on nodes that joined during the lab's life."""
        lh_nodes = {n["metadata"]["name"]: n for n in self.kube.live(R_LH_NODES)}
        replicas = self.kube.live(R_LH_REPLICAS)
        for rep in replicas:  # finish rebuilding
            if (
                not rep["spec"].get("healthyAt")
                and not rep["spec"].get("failedAt")
                and self.due(("rebuild", rep["metadata"]["name"]), self.t.replica_rebuild)
            ):
                stamp = now_iso()
                await self.patch(
                    R_LH_REPLICAS,
                    world.LONGHORN_NS,
                    rep["metadata"]["name"],
                    {
                        "spec": {"healthyAt": stamp, "lastHealthyAt": stamp},
                        "status": {"currentState": "running"},
                    },
                )
        for vol in self.kube.live(R_LH_VOLUMES):
            name = vol["metadata"]["name"]
            if vol.get("status", {}).get("state") != "attached":
                continue
            mine = [r for r in replicas if r["spec"].get("volumeName") == name]
            working = [r for r in mine if not r["spec"].get("failedAt")]
            if len(working) >= int(vol["spec"].get("numberOfReplicas", 3)):
                continue
            used = {r["spec"]["nodeID"] for r in working}
            for node in sorted(self.joined & ready - used):
                lh = lh_nodes.get(node)
                if (
                    not lh
                    or not lh["spec"].get("allowScheduling")
                    or condition(lh, "Ready").get("status") != "True"
                ):
                    continue
                rep = world.replica_object(
                    name, node, uuid.uuid4().hex, True, True, datetime.now(UTC)
                )
                rep["spec"].update({"healthyAt": "", "failedAt": "", "lastFailedAt": ""})
                await self.create(R_LH_REPLICAS, world.LONGHORN_NS, rep)
                self.state.record(f"longhorn: rebuilding {name} on {node}")
                break
        # once a volume has its replicas back, Longhorn cleans up the failed ones
        for vol in self.kube.live(R_LH_VOLUMES):
            name = vol["metadata"]["name"]
            mine = [r for r in replicas if r["spec"].get("volumeName") == name]
            good = [r for r in mine if healthy(r)]
            if len(good) >= int(vol["spec"].get("numberOfReplicas", 3)):
                for rep in mine:
                    if rep["spec"].get("failedAt") and rep["spec"]["nodeID"] not in ready:
                        await self.delete(R_LH_REPLICAS, world.LONGHORN_NS, rep["metadata"]["name"])

    async def restores(self, ready: set[str]) -> None:
        """A volume created with spec.fromBackup: Longhorn attaches it, restores the backup into
        new replicas (restoreRequired, Restore condition True), then detaches it."""
        for vol in self.kube.live(R_LH_VOLUMES):
            name, spec = vol["metadata"]["name"], vol.get("spec") or {}
            status = vol.get("status") or {}
            if not spec.get("fromBackup") or not ready:
                continue
            if not status.get("restoreInitiated"):
                nodes = sorted(ready)[: int(spec.get("numberOfReplicas") or 3)]
                for i, node in enumerate(nodes):
                    rep = world.replica_object(name, node, uuid.uuid4().hex, True, True,
                                               datetime.now(UTC))
                    await self.create(R_LH_REPLICAS, world.LONGHORN_NS, rep)
                    if i == 0:
                        self.state.record(f"longhorn: restoring {name} from backup")
                await self.patch(R_LH_VOLUMES, world.LONGHORN_NS, name, {"status": {
                    "state": "attached", "currentNodeID": nodes[0], "ownerID": nodes[0],
                    "restoreInitiated": True, "restoreRequired": True,
                    "conditions": [{"type": "Restore", "status": "True",
                                    "reason": "RestoreInProgress", "message": "",
                                    "lastTransitionTime": now_iso()}]}})
            elif status.get("restoreRequired") and self.due(
                ("restore", name), self.t.volume_restore
            ):
                self.forget("restore", name)
                await self.patch(R_LH_VOLUMES, world.LONGHORN_NS, name, {"status": {
                    "state": "detached", "currentNodeID": "", "restoreRequired": False,
                    "lastBackup": "", "conditions": [{"type": "Restore", "status": "False",
                                                      "reason": "", "message": "",
                                                      "lastTransitionTime": now_iso()}]}})
                self.state.record(f"longhorn: volume {name} restored, detached")

    async def robustness(self) -> None:
        replicas = self.kube.live(R_LH_REPLICAS)
        for vol in self.kube.live(R_LH_VOLUMES):
            name = vol["metadata"]["name"]
            status = vol.get("status", {})
            good = sum(1 for r in replicas if r["spec"].get("volumeName") == name and healthy(r))
            if status.get("state") != "attached":
                want = "unknown"
            elif good == 0:
                want = "faulted"
            else:
                want = (
                    "healthy" if good >= int(vol["spec"].get("numberOfReplicas", 3)) else "degraded"
                )
            if status.get("robustness") != want:
                await self.patch(
                    R_LH_VOLUMES, world.LONGHORN_NS, name, {"status": {"robustness": want}}
                )

    # ------------------------------------------------------------- datastore

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
                if res == R_SECRETS and obj.get("type") != "k3s.cattle.io/node-password":
                    continue
                if meta.get("finalizers"):
                    await self.patch(res, meta.get("namespace"), meta["name"],
                                     {"metadata": {"finalizers": None}})
                await self.delete(res, meta.get("namespace"), meta["name"])
        self.joined.clear()
        self.timers.clear()
        self.state.record("every server VM destroyed: the cluster's datastore is gone")

    # ------------------------------------------------------------- storage

    async def storage_binding(self) -> None:
        """The PV controller binds a PVC to the PV it names; Longhorn records the binding."""
        pvcs = {(p["metadata"]["namespace"], p["metadata"]["name"]): p
                for p in self.kube.live(R_PVCS)}
        for pv in self.kube.live(R_PVS):
            name, spec = pv["metadata"]["name"], pv.get("spec") or {}
            ref = spec.get("claimRef") or {}
            claim = pvcs.get((ref.get("namespace"), ref.get("name")))
            phase = (pv.get("status") or {}).get("phase")
            if claim is None:
                if ref and phase == "Bound":
                    await self.patch(R_PVS, None, name, {"status": {"phase": "Released"}})
                continue
            if (claim.get("spec") or {}).get("volumeName") != name or phase == "Bound":
                continue
            await self.patch(R_PVS, None, name, {"status": {"phase": "Bound"}})
            await self.patch(R_PVCS, ref["namespace"], ref["name"], {"status": {
                "phase": "Bound", "accessModes": spec.get("accessModes"),
                "capacity": spec.get("capacity")}})
            handle = (spec.get("csi") or {}).get("volumeHandle")
            if handle and self.kube.current(R_LH_VOLUMES, world.LONGHORN_NS, handle):
                await self.patch(R_LH_VOLUMES, world.LONGHORN_NS, handle, {"status": {
                    "kubernetesStatus": {"pvName": name, "pvStatus": "Bound",
                                         "namespace": ref["namespace"],
                                         "pvcName": ref["name"]}}})
            self.state.record(f"pvc {ref['namespace']}/{ref['name']} bound to {name}")

    async def workloads(self) -> None:
        """Deployments and StatefulSets keep spec.replicas pods (matchLabels selectors)."""
        nodes = sorted(
            n["metadata"]["name"] for n in self.kube.live(R_NODES)
            if condition(n, "Ready").get("status") == "True"
        )
        pods = self.kube.live(R_PODS)
        for res in WORKLOADS:
            for wl in self.kube.live(res):
                meta, spec = wl["metadata"], wl.get("spec") or {}
                ns, name = meta["namespace"], meta["name"]
                match = (spec.get("selector") or {}).get("matchLabels") or {}
                mine = [p for p in pods if p["metadata"]["namespace"] == ns and match and all(
                    (p["metadata"].get("labels") or {}).get(k) == v for k, v in match.items())]
                want = int(spec.get("replicas", 1))
                for pod in sorted(mine, key=lambda p: p["metadata"]["name"])[want:]:
                    await self.delete(R_PODS, ns, pod["metadata"]["name"])
                    self.state.record(f"pod {ns}/{pod['metadata']['name']} deleted (scaled down)")
                for i in range(len(mine), want if nodes else 0):
                    template = spec.get("template") or {}
                    pod_name = (f"{name}-{i}" if res.plural == "statefulsets"
                                else f"{name}-{uuid.uuid4().hex[:5]}")
                    kind = "StatefulSet" if res.plural == "statefulsets" else "ReplicaSet"
                    body = world._pod(pod_name, ns, nodes[i % len(nodes)],
                                      dict((template.get("metadata") or {}).get("labels") or {}),
                                      (kind, name), (template.get("spec") or {}).get("volumes"))
                    await self.create(R_PODS, ns, body)
                    self.state.record(f"pod {ns}/{pod_name} started")
                ready = min(len(mine), want)
                if (wl.get("status") or {}).get("replicas") != ready:
                    await self.patch(res, ns, name, {"status": {"replicas": ready,
                                                                "readyReplicas": ready}})

    # ---------------------------------------------------------------------- Flux

    async def flux(self) -> None:
        for res in FLUX:
            for obj in self.kube.live(res):
                await self.flux_one(res, obj)

    async def flux_one(self, res: Any, obj: dict[str, Any]) -> None:
        meta, status = obj["metadata"], obj.get("status") or {}
        key = ("flux", res.plural, meta.get("namespace", ""), meta["name"])
        if obj.get("spec", {}).get("suspend"):
            self.forget(*key)
            return
        token = (meta.get("annotations") or {}).get(REQUESTED_AT)
        generation = int(meta.get("generation") or 1)
        wanted = (
            token is not None and token != status.get("lastHandledReconcileAt")
        ) or generation != int(status.get("observedGeneration") or 0)
        if not wanted:
            self.forget(*key)
            return
        if not self.due(key, self.t.flux_reconcile):
            if condition(obj, "Reconciling").get("status") != "True":
                await self.flux_status(res, obj, progressing=True, token=None)
            return
        self.forget(*key)
        await self.flux_status(res, obj, progressing=False, token=token)

    async def flux_status(
        self, res: Any, obj: dict[str, Any], progressing: bool, token: str | None
    ) -> None:
        meta = obj["metadata"]
        generation = int(meta.get("generation") or 1)
        failing = (
            meta.get("namespace"),
            meta["name"],
        ) in FAILING_RELEASES and res.plural == "helmreleases"
        others = [
            c
            for c in (obj.get("status") or {}).get("conditions") or []
            if c.get("type") not in ("Ready", "Reconciling", "Stalled")
        ]
        stamp = now_iso()
        if progressing:
            conditions = [
                {
                    "type": "Reconciling",
                    "status": "True",
                    "reason": "Progressing",
                    "message": "reconciliation in progress",
                    "observedGeneration": generation,
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Ready",
                    "status": "Unknown",
                    "reason": "Progressing",
                    "message": "reconciliation in progress",
                    "observedGeneration": generation,
                    "lastTransitionTime": stamp,
                },
                *others,
            ]
            await self.patch(
                res, meta.get("namespace"), meta["name"], {"status": {"conditions": conditions}}
            )
            return
        if failing:
            ready = {
                "type": "Ready",
                "status": "False",
                "reason": "UpgradeFailed",
                "message": world.GRAFANA_FAILURE,
            }
        elif res.plural == "kustomizations":
            ready = {
                "type": "Ready",
                "status": "True",
                "reason": "ReconciliationSucceeded",
                "message": f"Applied revision: {world.REVISION}",
            }
        elif res.plural == "helmreleases":
            ready = {
                "type": "Ready",
                "status": "True",
                "reason": "UpgradeSucceeded",
                "message": "Helm upgrade succeeded for release "
                f"{meta.get('namespace')}/{meta['name']}",
            }
        else:
            ready = {
                "type": "Ready",
                "status": "True",
                "reason": "Succeeded",
                "message": f"stored artifact for revision '{world.REVISION}'",
            }
        ready.update({"observedGeneration": generation, "lastTransitionTime": stamp})
        body: dict[str, Any] = {"observedGeneration": generation, "conditions": [ready, *others]}
        if token is not None:
            body["lastHandledReconcileAt"] = token
        if res.plural == "kustomizations" and not failing:
            body["lastAppliedRevision"] = world.REVISION
            body["lastAttemptedRevision"] = world.REVISION
        await self.patch(res, meta.get("namespace"), meta["name"], {"status": body})
        self.state.record(
            f"flux: {res.plural[:-1]} {meta.get('namespace')}/{meta['name']} "
            f"reconciled, Ready={ready['status']}"
        )

    # ------------------------------------------------------------ admission

    def admit(self, request: Any, current: dict[str, Any] | None) -> tuple[int, str, str] | None:
        """Longhorn's node validator: what its admission webhook refuses (domain.md §2.7)."""
        if (
            request.resource != R_LH_NODES
            or request.action != kmock.action.DELETE
            or current is None
        ):
            return None
        name = current["metadata"]["name"]
        cond = condition(current, "Ready")
        replicas = [r for r in self.kube.live(R_LH_REPLICAS) if r["spec"].get("nodeID") == name]
        engines = [e for e in self.kube.live(R_LH_ENGINES) if e["spec"].get("nodeID") == name]
        allow = bool(current.get("spec", {}).get("allowScheduling"))
        if (
            cond.get("status") == "True"
            or cond.get("reason") not in ("KubernetesNodeGone", "ManagerPodMissing")
            or allow
            or replicas
            or engines
        ):
            message = (
                f"could not delete node {name} with node ready condition is "
                f"{cond.get('status', '')}, reason is {cond.get('reason', '')}, node "
                f"schedulable {str(allow).lower()}, and {len(replicas)} replica, "
                f"{len(engines)} engine running on it"
            )
            return (
                422,
                "Invalid",
                f'admission webhook "validator.longhorn.io" denied the request: {message}',
            )
        return None

    # --------------------------------------------------------------- eviction

    async def evict(self, request: Any) -> kmock.Response:
        """policy/v1 Eviction: 429 when a PodDisruptionBudget allows no disruption."""
        ns, name = request.namespace, request.name
        pod = self.kube.current(R_PODS, ns, name)
        if pod is None:
            return kmock.Response(
                status=404,
                payload=status_body(
                    404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}
                ),
            )
        labels = pod["metadata"].get("labels") or {}
        for pdb in self.kube.live(R_PDBS):
            if pdb["metadata"].get("namespace") != ns:
                continue
            match = (pdb.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
            if not match or any(labels.get(k) != v for k, v in match.items()):
                continue
            status = pdb.get("status") or {}
            if int(status.get("disruptionsAllowed", 0)) <= 0:
                return kmock.Response(
                    status=429,
                    payload=status_body(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        {
                            "causes": [
                                {
                                    "reason": "DisruptionBudget",
                                    "message": f"The disruption budget {pdb['metadata']['name']} "
                                    f"needs {status.get('desiredHealthy', 0)} healthy pods "
                                    f"and has {status.get('currentHealthy', 0)} currently",
                                }
                            ]
                        },
                    ),
                )
        await self.delete(R_PODS, ns, name)
        return kmock.Response(status=201, payload=status_body(201, "", "", ok=True))


def healthy(replica: dict[str, Any]) -> bool:
    """Longhorn's IsAvailableHealthyReplica."""
    spec = replica.get("spec", {})
    return (
        not replica["metadata"].get("deletionTimestamp")
        and not spec.get("failedAt")
        and bool(spec.get("healthyAt"))
    )

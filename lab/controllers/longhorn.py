"""Longhorn's managers: Longhorn nodes follow their Kubernetes nodes, replicas on a lost node fail,
a volume attached to a deleted node moves to a healthy replica's node, replicas are rebuilt on
nodes that joined, a volume created from a backup is restored, and robustness is kept current;
and its admission webhook, which (from v1.10, `world.LonghornVersion`) refuses deleting a
Longhorn node that is not gone or still holds replicas or engines.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kmock

from lab import world
from lab.controllers.base import (
    R_LH_ENGINES,
    R_LH_NODES,
    R_LH_REPLICAS,
    R_LH_SETTINGS,
    R_LH_VOLUMES,
    R_NODES,
    ControllerBase,
    condition,
)
from lab.kube_wire import now_iso
from lab.seed.longhorn import longhorn_node, replica_object

RESTORE_LIMIT = "concurrent-backup-restore-per-node-limit"
# types.GetLonghornLabelKey(types.DeleteNodeFromLonghorn): Longhorn's uninstaller deletes its nodes
UNINSTALLING = "longhorn.io/delete-node-from-longhorn"


@dataclass
class RestoreRun:
    """One restore the lab's Longhorn runs: its node, its backup URL, how long it takes, when
    its engine began (None while held at the node's limit), the last progress it reported."""

    node: str
    url: str
    seconds: float
    started: float | None = None
    reported: int = 0


class LonghornController(ControllerBase):
    """Longhorn's node, replica, volume and restore controllers, and its node validator."""

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
            await self.create(R_LH_NODES, world.LONGHORN_NS, longhorn_node(name, datetime.now(UTC)))
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
            if rep["spec"].get("healthyAt") or rep["spec"].get("failedAt"):
                continue
            if not self.due(("rebuild", rep["metadata"]["name"]), self.t.replica_rebuild):
                await self.rebuild_progress(rep, replicas)
                continue
            await self.rebuild_status(rep, None)
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
            self.state.record(f"longhorn: replica {rep['metadata']['name']} rebuilt, healthy")
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
                rep = replica_object(name, node, uuid.uuid4().hex, True, True, datetime.now(UTC))
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

    async def rebuild_progress(self, rep: dict[str, Any], replicas: list[dict[str, Any]]) -> None:
        """How far a rebuild is, on the volume's Engine, in steps of 10% as the restore's."""
        name = rep["metadata"]["name"]
        elapsed = time.monotonic() - self.timers[("rebuild", name)]
        percent = int(100 * elapsed / max(self.t.replica_rebuild, 1e-9)) // 10 * 10
        if percent <= self.rebuild_reported.get(name, -1):
            return
        self.rebuild_reported[name] = percent
        self.state.record(f"longhorn: rebuild of {name} at {percent}%")
        sources = sorted(replica_address(r["spec"]["nodeID"]) for r in replicas
                         if r["spec"].get("volumeName") == rep["spec"].get("volumeName")
                         and healthy(r))
        await self.rebuild_status(rep, {
            "isRebuilding": True, "progress": percent, "state": "in_progress", "error": "",
            "fromReplicaAddress": sources[0] if sources else "",
            "fromReplicaAddressList": sources})

    async def rebuild_status(self, rep: dict[str, Any], status: dict[str, Any] | None) -> None:
        """The Engine's ``status.rebuildStatus`` entry of the rebuilding replica, keyed by its
        address (longhorn-manager engine_controller.go copies ReplicaRebuildStatus, a map from
        replica address to RebuildStatus, into it); None removes it once the rebuild is over."""
        engine = str(rep["spec"].get("engineName") or "")
        if status is None:
            self.rebuild_reported.pop(rep["metadata"]["name"], None)
        if not engine or self.kube.current(R_LH_ENGINES, world.LONGHORN_NS, engine) is None:
            return
        await self.patch(R_LH_ENGINES, world.LONGHORN_NS, engine, {"status": {
            "rebuildStatus": {replica_address(rep["spec"]["nodeID"]): status}}})

    async def restores(self, ready: set[str]) -> None:
        """A volume created with spec.fromBackup: Longhorn attaches it on a node, restores the
        backup into new replicas (restoreRequired, Restore condition True), then detaches it.

        Restore-time model: one restoring engine takes ``volume_restore`` (attach, detach) plus
        ``restore_per_gib`` seconds per GiB; a node runs at most the setting
        ``concurrent-backup-restore-per-node-limit`` (default 5) of them at once and holds the
        others, as Longhorn's engine monitor does (longhorn/longhorn enhancement "Concurrent
        Backup Restore Per Node Limit", issue #4558). Longhorn picks the node itself; the lab
        takes the one with the fewest restores. Progress goes to the Engine's
        ``status.restoreStatus`` (longhorn-manager k8s/pkg/apis/longhorn/v1beta2/engine.go).
        """
        volumes = {v["metadata"]["name"]: v for v in self.kube.live(R_LH_VOLUMES)}
        for name in [n for n in self.restore_runs if n not in volumes]:
            await self.forget_restore(name)
        for name, vol in volumes.items():
            if (vol.get("spec") or {}).get("fromBackup") and ready and not (
                    vol.get("status") or {}).get("restoreInitiated"):
                await self.begin_restore(name, vol, ready)
        limit = self.restore_limit()
        now = time.monotonic()
        for node in sorted({r.node for r in self.restore_runs.values()}):
            runs = [(n, r) for n, r in self.restore_runs.items() if r.node == node]
            running = [x for x in runs if x[1].started is not None]
            for _, run in [x for x in runs if x[1].started is None][: max(limit - len(running), 0)]:
                run.started = now
            with self.state.lock:
                self.state.restore_peak[node] = max(self.state.restore_peak.get(node, 0), len(runs))
        for name, run in list(self.restore_runs.items()):
            if run.started is not None:
                await self.advance_restore(name, run, now)

    def restore_limit(self) -> int:
        setting = self.kube.current(R_LH_SETTINGS, world.LONGHORN_NS, RESTORE_LIMIT)
        try:
            return int((setting or {}).get("value", 5))
        except ValueError:
            return 5

    async def begin_restore(self, name: str, vol: dict[str, Any], ready: set[str]) -> None:
        if name in self.restore_runs:  # deleted and created again between two ticks
            await self.forget_restore(name)
        spec = vol.get("spec") or {}
        load = {n: 0 for n in ready}
        for run in self.restore_runs.values():
            if run.node in load:
                load[run.node] += 1
        node = min(sorted(load), key=lambda n: load[n])
        others = sorted(ready - {node})
        nodes = [node, *others][: int(spec.get("numberOfReplicas") or 3)]
        for rep_node in nodes:
            rep = replica_object(name, rep_node, uuid.uuid4().hex, True, True, datetime.now(UTC))
            await self.create(R_LH_REPLICAS, world.LONGHORN_NS, rep)
        await self.create(R_LH_ENGINES, world.LONGHORN_NS, {
            "apiVersion": "longhorn.io/v1beta2", "kind": "Engine",
            "metadata": {"name": f"{name}-e-0", "namespace": world.LONGHORN_NS,
                         "labels": {"longhornvolume": name, "longhornnode": node}},
            "spec": {"volumeName": name, "nodeID": node, "desireState": "running"},
            "status": {"currentState": "running", "ownerID": node, "restoreStatus": {}}})
        await self.patch(R_LH_VOLUMES, world.LONGHORN_NS, name, {"status": {
            "state": "attached", "currentNodeID": node, "ownerID": node,
            "restoreInitiated": True, "restoreRequired": True,
            "conditions": [{"type": "Restore", "status": "True", "reason": "RestoreInProgress",
                            "message": "", "lastTransitionTime": now_iso()}]}})
        gib = int(spec.get("size") or 0) / 1024**3
        self.restore_runs[name] = RestoreRun(
            node, str(spec["fromBackup"]), self.t.volume_restore + gib * self.t.restore_per_gib)
        with self.state.lock:
            self.state.restore_starts[name] = self.state.restore_starts.get(name, 0) + 1
        self.state.record(f"longhorn: restoring {name} from backup on {node}")

    async def advance_restore(self, name: str, run: RestoreRun, now: float) -> None:
        assert run.started is not None
        elapsed = now - run.started
        with self.state.lock:
            failing = any(f"backup={b}&" in run.url for b in self.state.failing_backups)
        if failing and elapsed >= self.t.volume_restore:
            await self.end_restore(name, {"type": "Restore", "status": "False",
                                          "reason": "RestoreFailure",
                                          "message": "lab: the backup's blocks cannot be read"})
            self.state.record(f"longhorn: restoring {name} failed")
        elif elapsed >= run.seconds:
            await self.end_restore(name, {"type": "Restore", "status": "False", "reason": "",
                                          "message": ""})
            self.state.record(f"longhorn: volume {name} restored, detached")
        else:
            percent = int(100 * elapsed / run.seconds)
            if percent - run.reported >= 10:
                run.reported = percent
                await self.patch(R_LH_ENGINES, world.LONGHORN_NS, f"{name}-e-0", {"status": {
                    "restoreStatus": {f"{run.node}:10000": {
                        "isRestoring": True, "progress": percent, "backupURL": run.url,
                        "state": "in_progress", "error": ""}}}})

    async def end_restore(self, name: str, restore: dict[str, Any]) -> None:
        del self.restore_runs[name]
        await self.patch(R_LH_ENGINES, world.LONGHORN_NS, f"{name}-e-0", {
            "spec": {"nodeID": "", "desireState": "stopped"},
            "status": {"currentState": "stopped", "restoreStatus": None}})
        await self.patch(R_LH_VOLUMES, world.LONGHORN_NS, name, {"status": {
            "state": "detached", "currentNodeID": "", "restoreRequired": False,
            "lastBackup": "", "conditions": [{**restore, "lastTransitionTime": now_iso()}]}})

    async def forget_restore(self, name: str) -> None:
        """A volume deleted mid-restore: Longhorn removes its engine and replicas with it."""
        self.restore_runs.pop(name, None)
        for res in (R_LH_ENGINES, R_LH_REPLICAS):
            for obj in self.kube.live(res):
                if (obj.get("spec") or {}).get("volumeName") == name:
                    await self.delete(res, world.LONGHORN_NS, obj["metadata"]["name"])

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

    def admit(self, request: Any, current: dict[str, Any] | None) -> tuple[int, str, str] | None:
        """Longhorn's node validator: what its admission webhook refuses, by the version the lab
        runs (`world.LonghornVersion`: only v1.10+ validates a DELETE)."""
        if (
            request.resource != R_LH_NODES
            or request.action != kmock.action.DELETE
            or current is None
            or not self.state.longhorn.validates_node_delete
            or UNINSTALLING in (current["metadata"].get("annotations") or {})
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


def healthy(replica: dict[str, Any]) -> bool:
    """Longhorn's IsAvailableHealthyReplica."""
    spec = replica.get("spec", {})
    return (
        not replica["metadata"].get("deletionTimestamp")
        and not spec.get("failedAt")
        and bool(spec.get("healthyAt"))
    )


def replica_address(node: str) -> str:
    """A replica's address as the engine knows it (tcp://<instance-manager IP>:<port>); the lab
    has no pod IPs, so the node's name stands in for the address."""
    return f"tcp://{node}:10000"

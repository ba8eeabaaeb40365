"""What the lab's controllers share: the resources they act on, their `Timings`, and
`ControllerBase`, the state and plumbing every system's controller builds on.

`CONTROLLER_HEADER` marks the controllers' own requests to the emulator, so the lab can leave
them out of what clients did.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import kmock

from lab import world
from lab.kube import CONTROLLER_HEADER, LabKube

R_NODES = kmock.resource("", "v1", "nodes")
R_PODS = kmock.resource("", "v1", "pods")
R_SECRETS = kmock.resource("", "v1", "secrets")
R_LH_NODES = kmock.resource("longhorn.io", "v1beta2", "nodes")
R_LH_VOLUMES = kmock.resource("longhorn.io", "v1beta2", "volumes")
R_LH_REPLICAS = kmock.resource("longhorn.io", "v1beta2", "replicas")
R_LH_ENGINES = kmock.resource("longhorn.io", "v1beta2", "engines")
R_LH_BACKUPS = kmock.resource("longhorn.io", "v1beta2", "backups")
R_LH_SNAPSHOTS = kmock.resource("longhorn.io", "v1beta2", "snapshots")
R_LH_BACKUPVOLUMES = kmock.resource("longhorn.io", "v1beta2", "backupvolumes")
R_LH_BACKUPTARGETS = kmock.resource("longhorn.io", "v1beta2", "backuptargets")
R_LH_SETTINGS = kmock.resource("longhorn.io", "v1beta2", "settings")
R_PVCS = kmock.resource("", "v1", "persistentvolumeclaims")
R_PVS = kmock.resource("", "v1", "persistentvolumes")
R_NAMESPACES = kmock.resource("", "v1", "namespaces")
R_ETCD_SNAPSHOTS = kmock.resource("k3s.cattle.io", "v1", "etcdsnapshotfiles")
R_KUSTOMIZATIONS = kmock.resource("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
R_GITREPOSITORIES = kmock.resource("source.toolkit.fluxcd.io", "v1", "gitrepositories")


TICK_FLOOR = 0.1  # seconds between two passes of the controllers, at the fastest


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
    volume_restore: float = 0.5  # attach and detach around a restore (any size)
    restore_per_gib: float = 0.2  # one restoring engine's pace: seconds per GiB (see longhorn.py)
    pod_start: float = 2.0  # a bare pod scheduled -> its volume attached and container started
    namespace_delete: float = 1.0  # an emptied Terminating namespace -> gone
    cnpg_recovery: float = 30.0  # a recovery Cluster created -> restored, its instance Ready
    cnpg_backup: float = 2.0  # a CNPG Backup running -> its base backup stored, completed
    infrastructure_install: float = 600.0  # first apply of the layer installing Longhorn, CNPG

    def scaled(self, factor: float) -> Timings:
        values = {f.name: getattr(self, f.name) * factor for f in fields(self)}
        # Each tick copies every object the controllers look at: at 0.02 s (scale 0.1) they took
        # a core's third during a whole e2e test, at 0.05 s still a fifteenth of a core for every
        # second a lab idled. A pass every 0.1 s (a second of real time, a controller's resync
        # rather than its watch) halves that; the shortest delays come due on the next pass.
        values["tick"] = max(TICK_FLOOR, min(self.tick, values["tick"]))
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


class ControllerBase:
    """The APIs, the lab's state and the timers every controller works with, and their plumbing.

    Each system's controller subclasses it; `lab.controllers.Controllers` combines them.
    """

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
        self.probes: set[asyncio.Task[None]] = set()  # started sshds not yet answering
        self.vm_root = vm_root
        self.pve = pve
        self.state = state
        self.t = timings
        self.timers: dict[tuple[str, ...], float] = {}
        self.joined: set[str] = set()
        self.node_uids: dict[str, str] = {}
        self.scanned = False
        self.datastore_lost = False
        self.restore_runs: dict[str, Any] = {}
        self.rebuild_reported: dict[str, int] = {}  # replica -> the last percent on its engine
        # Longhorn snapshots waiting for their volume to attach (name -> passes), and each
        # snapshot error set (a test shows the transient one happened)
        self.snapshot_attaching: dict[str, int] = {}
        self.snapshot_errors: list[str] = []
        # CNPG recovery Clusters (ns, name): why their recovery fails ("" when it does not), the
        # server they recover; and (ns, pod) -> the recovered database psql runs against
        self.cnpg_problems: dict[tuple[str, str], str] = {}
        self.cnpg_servers: dict[tuple[str, str], str] = {}
        self.cnpg_databases: dict[tuple[str, str], Path] = {}

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

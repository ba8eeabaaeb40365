"""The lab's controllers: what kubelet, K3s, Longhorn and Flux would do in reaction to changes.

They run as one asyncio task on the lab loop (the loop that serves kmock and fakepve), read the
emulator's and fakepve's state directly, and write to Kubernetes through the emulator's HTTP API,
so every change reaches watchers and the request log like a real controller's would. Every delay
is a `Timings` field, scaled by the lab's `time_scale`.

One module per system: `nodes` (kubelet, K3s's node controller), `etcd`, `longhorn` (and
`longhorn_backup`: snapshots and backups taken, `longhorn_sync`: the backup target), `workloads`
(Kubernetes' own controllers), `kubelet` (bare pods run once), `namespaces`, `flux` and `cnpg`
(recovery Clusters, Backups and psql through pods/exec), on the
shared plumbing of `base`; `Controllers` combines
them and runs their steps, in order, on every tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from lab import world
from lab.controllers.base import Timings
from lab.controllers.cnpg import CnpgController
from lab.controllers.flux import FluxController
from lab.controllers.kubelet import KubeletController
from lab.controllers.longhorn import LonghornController
from lab.controllers.longhorn_backup import LonghornBackupController
from lab.controllers.longhorn_sync import BackupTargetController
from lab.controllers.namespaces import NamespaceController
from lab.controllers.nodes import NodeController
from lab.controllers.workloads import WorkloadController
from lab.kube import LabKube

log = logging.getLogger("drbot.lab")


class Controllers(NodeController, LonghornController, LonghornBackupController,
                  BackupTargetController, WorkloadController, FluxController, KubeletController,
                  NamespaceController, CnpgController):
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
        super().__init__(kube, pve, state, timings, sshds, vm_root)
        self.task: asyncio.Task[None] | None = None
        kube.admissions.append(self.admit)
        kube.exec_handlers.append(self.cnpg_exec)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name="drbot-lab-controllers"
        )

    async def stop(self) -> None:
        for probe in list(self.probes):
            probe.cancel()
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
        await self.longhorn_backups()
        await self.backup_targets()
        await self.storage_binding()
        await self.workloads()
        await self.bare_pods()
        await self.cnpg_clusters()
        await self.cnpg_backups()
        await self.namespaces()
        await self.flux()

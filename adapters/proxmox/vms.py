"""Proxmox VMs and cluster state: find a VM across the cluster, read its status, stop, destroy.

``Proxmox`` is the class drbot uses; the transport (``client``) and the task waiting (``tasks``)
are its bases.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from adapters.errors import AdapterError, Conflict, NotFound, Refused, TimedOut, Unreachable
from adapters.progress import Hooks, Progress
from adapters.proxmox.errors import Op, locked_message, quorum_message
from adapters.proxmox.tasks import POLL_FIRST, POLL_MAX, PveTasks

# Share of stop_vm's timeout given to PVE's own stop timeout (after it PVE kills QEMU), so the
# task normally ends inside our wait.
STOP_TIMEOUT_SHARE = 0.8


@dataclass(frozen=True)
class VM:
    """A QEMU VM as Proxmox reports it; ``lock`` and ``ha`` are empty when unset/unmanaged."""

    vmid: int
    name: str
    node: str
    status: str
    lock: str
    ha: str


@dataclass(frozen=True)
class PveNode:
    """A cluster node and whether the cluster sees it online."""

    name: str
    online: bool


class Proxmox(PveTasks):
    """The Proxmox VE API for drbot. The proxmoxer clients are created on first use."""

    # ------------------------------------------------------------------ VMs

    def find_vm(self, vmid: int) -> VM:
        """Locate a VM in the cluster (``/cluster/resources``, else a scan of the nodes)."""
        op = Op(f"look up VM {vmid}", vmid=vmid)
        outcome = self._request("GET", ("cluster", "resources"), op, type="vm")
        if outcome.error is not None:
            if outcome.status in (None, 401):
                raise outcome.error
            return self._scan_nodes(vmid, op)
        for item in outcome.value or []:
            if item.get("type") == "qemu" and int(item.get("vmid", -1)) == vmid:
                return VM(vmid=vmid, name=str(item.get("name") or ""), node=str(item["node"]),
                          status=str(item.get("status") or ""), lock=str(item.get("lock") or ""),
                          ha=str(item.get("hastate") or ""))
        raise NotFound(f"No VM {vmid} in the Proxmox cluster (or the token "
                       f"{self.config.token_id} lacks VM.Audit on /vms/{vmid}). Check the VM id "
                       "in the inventory against `qm list` on the nodes.")

    def _scan_nodes(self, vmid: int, op: Op) -> VM:
        offline = []
        for node in self.list_nodes():
            if not node.online:
                offline.append(node.name)
                continue
            for item in self._call("GET", ("nodes", node.name, "qemu"), op) or []:
                if int(item.get("vmid", -1)) == vmid:
                    return self.vm_status(node.name, vmid)
        if offline:
            raise Unreachable(f"VM {vmid} is on none of the online Proxmox nodes; the offline "
                              f"node(s) {', '.join(offline)} may hold it. Bring them back (or "
                              "check `pvecm status`) and retry.")
        raise NotFound(f"No VM {vmid} on any Proxmox node. Check the VM id in the inventory "
                       "against `qm list` on the nodes.")

    def vm_status(self, node: str, vmid: int) -> VM:
        """The current state of a VM on a node (NotFound if it is not there)."""
        op = Op(f"read the status of VM {vmid}", node=node, vmid=vmid)
        data = self._call("GET", ("nodes", node, "qemu", vmid, "status", "current"), op) or {}
        ha = data.get("ha") or {}
        return VM(vmid=vmid, name=str(data.get("name") or ""), node=node,
                  status=str(data.get("status") or ""), lock=str(data.get("lock") or ""),
                  ha=str(ha.get("state") or "") if ha.get("managed") else "")

    def stop_vm(self, node: str, vmid: int, timeout: float = 120.0,
                hooks: Hooks | None = None) -> bool:
        """Stop a VM hard (fencing) and wait until it is stopped; False if it already was.

        PVE is asked to kill QEMU after STOP_TIMEOUT_SHARE of ``timeout``; the whole call gives up
        with TimedOut after ``timeout`` seconds. An HA-managed VM is stopped through HA, so after
        the task the VM's own status is awaited too.
        """
        hooks = hooks or Hooks()
        deadline = time.monotonic() + timeout
        vm = self.vm_status(node, vmid)
        if vm.status == "stopped":
            hooks.report(Progress(f"VM {vmid} is already stopped", target=f"VM {vmid}",
                                  host=node, status="stopped"))
            return False
        if vm.lock:
            raise Conflict(locked_message(vmid, node, vm.lock))
        op = Op(f"stop VM {vmid}", node=node, vmid=vmid)
        pve_timeout = max(1, int(timeout * STOP_TIMEOUT_SHARE))
        upid = self._call("POST", ("nodes", node, "qemu", vmid, "status", "stop"), op,
                          timeout=pve_timeout)
        self._wait_task(node, str(upid), deadline, timeout, hooks)
        self._wait_stopped(node, vmid, deadline, hooks)
        hooks.report(Progress(f"VM {vmid} stopped", target=f"VM {vmid}", host=node,
                              status="stopped"))
        return True

    def _wait_stopped(self, node: str, vmid: int, deadline: float, hooks: Hooks) -> None:
        interval = POLL_FIRST
        while self.vm_status(node, vmid).status != "stopped":
            if time.monotonic() >= deadline:
                raise TimedOut(f"VM {vmid} on node {node} was still running when the wait ran "
                               "out, although its stop task ended (HA may still be acting). "
                               f"Check `ha-manager status` and `qm status {vmid}` on {node}.")
            self._sleep(min(interval, max(deadline - time.monotonic(), 0.0)), hooks,
                        f"the stop of VM {vmid} on node {node}")
            interval = min(interval * 2, POLL_MAX)

    def destroy_vm(self, node: str, vmid: int, timeout: float = 300.0,
                   hooks: Hooks | None = None) -> bool:
        """Destroy a stopped VM with its disks and its HA/backup/replication entries.

        Returns False when the VM is already gone, so a retry never fails; refuses (Refused) a
        running VM and a cluster without quorum.
        """
        hooks = hooks or Hooks()
        deadline = time.monotonic() + timeout
        try:
            vm = self.vm_status(node, vmid)
        except NotFound:
            return self._already_destroyed(node, vmid, hooks)
        if vm.status == "running":
            raise Refused(f"VM {vmid} on node {node} is running: Proxmox destroys only a stopped "
                          "VM. Stop it first (fence it), then destroy it.")
        if vm.lock:
            raise Conflict(locked_message(vmid, node, vm.lock))
        if not self.cluster_quorate():
            raise Refused(quorum_message(f"destroy VM {vmid}"))
        op = Op(f"destroy VM {vmid}", node=node, vmid=vmid)
        params = {"purge": 1, "destroy-unreferenced-disks": 1}
        outcome = self._request("DELETE", ("nodes", node, "qemu", vmid), op, **params)
        if isinstance(outcome.error, NotFound):
            return self._already_destroyed(node, vmid, hooks)
        if outcome.error is not None:
            raise outcome.error
        self._wait_task(node, str(outcome.value), deadline, timeout, hooks)
        hooks.report(Progress(f"VM {vmid} destroyed", target=f"VM {vmid}", host=node,
                              status="destroyed"))
        return True

    def _already_destroyed(self, node: str, vmid: int, hooks: Hooks) -> bool:
        """False once the VM is known to be gone from the whole cluster, not just from ``node``.

        A VM that was migrated is absent from its old node; calling that "destroyed" would let
        a rebuild go on beside a live VM with the same id.
        """
        try:
            elsewhere = self.find_vm(vmid)
        except NotFound:
            hooks.report(Progress(f"VM {vmid} does not exist (already destroyed)",
                                  target=f"VM {vmid}", host=node, status="absent"))
            return False
        if elsewhere.node == node:
            raise AdapterError(f"Proxmox answered that VM {vmid} does not exist on node {node} "
                               "yet still lists it there. Check `qm list` on that node and retry.")
        raise Refused(f"VM {vmid} is not on node {node} but on node {elsewhere.node} (migrated?), "
                      "so it was not destroyed. Correct the node of this VM in the inventory and "
                      "retry.")

    # -------------------------------------------------------------- cluster

    def list_nodes(self) -> list[PveNode]:
        """The cluster's nodes, sorted by name."""
        items = self._call("GET", ("nodes",), Op("list the Proxmox nodes")) or []
        return sorted((PveNode(name=str(i["node"]), online=i.get("status") == "online")
                       for i in items), key=lambda n: n.name)

    def cluster_quorate(self) -> bool:
        """True if the cluster has quorum (a standalone node always has)."""
        items = self._call("GET", ("cluster", "status"), Op("read the cluster status")) or []
        for item in items:
            if item.get("type") == "cluster":
                return bool(int(item.get("quorate") or 0))
        return True

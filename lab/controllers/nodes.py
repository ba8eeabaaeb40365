"""Kubelet and K3s's node controller: a VM's sshd runs while the VM does, a Node is Ready while
K3s runs on its VM with the node password it joined with, and a deleted Node's finalizers are
released (its node-password secret, then its etcd member) and its pods collected.

`NodeController` builds on `EtcdController` because releasing a server's etcd finalizer is K3s
removing its etcd member.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from lab import world
from lab.controllers.base import R_NODES, R_PODS, R_SECRETS, condition
from lab.controllers.etcd import EtcdController
from lab.kube_wire import now_iso
from lab.seed.k3s import ready_condition
from lab.servers import HOST

# How often a started sshd is probed until it answers, and for how long: "sshd up" is recorded
# when the endpoint first answers the SSH handshake (what a client waits for), not when its
# process was spawned (sshd still reads its config and keys and binds after that).
SSHD_PROBE = 0.01
SSHD_PROBE_FOR = 30.0


class NodeController(EtcdController):
    """The VMs' sshds, kubelet's Ready condition, and K3s's node removal."""

    def ssh_endpoints(self) -> None:
        """A VM's sshd answers while the VM runs, with the host key its last boot made."""
        for node, sshd in self.sshds.items():
            vm = self.vm_for(node)
            running = vm is not None and vm.status == "running"
            if running and not sshd.alive():
                sshd.start()
                self.announce_sshd(node, sshd.port)
            elif running and sshd.key_changed():
                sshd.reload()
                self.state.record(f"vm {node}: sshd reloaded its new host key")
            elif not running and sshd.alive():
                sshd.stop()
                self.state.record(f"vm {node}: sshd down")
            if vm is None:
                self.wipe_disk(node)

    def announce_sshd(self, node: str, port: int) -> None:
        """Record "sshd up" once the new sshd answers, from a task of its own (the tick goes on)."""
        task = asyncio.get_running_loop().create_task(self._sshd_answers(node, port),
                                                      name=f"drbot-lab-sshd-{node}")
        self.probes.add(task)
        task.add_done_callback(self.probes.discard)

    async def _sshd_answers(self, node: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + SSHD_PROBE_FOR
        while loop.time() < give_up:
            if await ssh_identification(port):
                self.state.record(f"vm {node}: sshd up")
                return
            await asyncio.sleep(SSHD_PROBE)
        self.state.record(f"vm {node}: sshd started but did not answer in {SSHD_PROBE_FOR:.0f}s")

    def wipe_disk(self, node: str) -> None:
        """A destroyed VM's disk is gone, and what K3s kept on it (etcd snapshots, k3s.yaml)."""
        disk = self.vm_root / node
        snapshots = disk / world.SNAPSHOT_DIR
        for path in [*(snapshots.glob("*") if snapshots.is_dir() else []),
                     disk / world.K3S_KUBECONFIG]:
            path.unlink(missing_ok=True)

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
                "status": {"conditions": [*others, ready_condition(ready, now)]},
            },
        )

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


async def ssh_identification(port: int) -> bool:
    """True when an SSH server on the lab's host and ``port`` sends its identification line."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        line = await asyncio.wait_for(reader.read(64), 1.0)
        return line.startswith(b"SSH-2.0-")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()

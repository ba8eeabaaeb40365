"""The scheduler and the kubelet, for bare pods (no owner, ``restartPolicy: Never``) such as a
drill's check pod: it is bound to a Ready, schedulable node, its claims must be Bound, then its
container runs its command once and the pod ends Succeeded or Failed with the exit code, and
what it printed is served at ``pods/<name>/log``.

Scheduling follows kube-scheduler's outcome: a pod no node can take stays Pending with the
condition PodScheduled=False, reason Unschedulable and a "0/N nodes are available: ..." message
(kubernetes pkg/scheduler/framework/types.go FitError). The kubelet reports a finished container
as ``state.terminated`` with ``exitCode`` and reason Completed or Error (pkg/kubelet/
kuberuntime), and the pod phase Succeeded only when every container exited 0
(pkg/kubelet/kubelet_pods.go getPhase).

The container runs on this machine: its command, with every argument that starts with a volume's
mountPath pointed at a folder holding that volume's files (the files the lab's Longhorn backups
were built from, lab/longhorn_blocks.py), so a check reads real bytes. A volume restored from a
backup in ``state.wrong_content_backups`` holds other content (a test's fault).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lab import world
from lab.controllers.base import R_LH_VOLUMES, R_NODES, R_PODS, R_PVCS, R_PVS, ControllerBase
from lab.controllers.base import condition as cond_of
from lab.kube_wire import now_iso
from lab.longhorn_blocks import volume_files

RUN_TIMEOUT = 120.0
_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}


def _bare(pod: dict[str, Any]) -> bool:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    return not meta.get("ownerReferences") and spec.get("restartPolicy") == "Never"


class KubeletController(ControllerBase):
    """Schedules and runs bare pods once."""

    async def bare_pods(self) -> None:
        nodes = self.kube.live(R_NODES)
        for pod in self.kube.live(R_PODS):
            if not _bare(pod):
                continue
            phase = (pod.get("status") or {}).get("phase") or "Pending"
            if phase != "Pending":
                continue
            if not (pod.get("spec") or {}).get("nodeName"):
                await self.schedule_pod(pod, nodes)
            else:
                await self.start_pod(pod)

    async def schedule_pod(self, pod: dict[str, Any], nodes: list[dict[str, Any]]) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        ready = [n for n in nodes if cond_of(n, "Ready").get("status") == "True"]
        fit = sorted(n["metadata"]["name"] for n in ready
                     if not (n.get("spec") or {}).get("unschedulable"))
        if fit:
            await self.patch(R_PODS, ns, name, {"spec": {"nodeName": fit[0]}, "status": {
                "phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True",
                                                    "lastTransitionTime": now_iso()}]}})
            self.state.record(f"pod {ns}/{name} scheduled on {fit[0]}")
            return
        reasons = []
        if len(nodes) > len(ready):
            reasons.append(f"{len(nodes) - len(ready)} node(s) had untolerated taint "
                           "{node.kubernetes.io/not-ready: }")
        if ready:
            reasons.append(f"{len(ready)} node(s) were unschedulable")
        message = f"0/{len(nodes)} nodes are available: " + ", ".join(reasons) + "."
        current = cond_of(pod, "PodScheduled")
        if current.get("message") != message:
            await self.patch(R_PODS, ns, name, {"status": {"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastTransitionTime": now_iso()}]}})

    def pod_volumes(self, pod: dict[str, Any]) -> dict[str, world.VolumeSpec | None] | None:
        """Claim name -> the lab volume whose files it holds, once every claim is Bound (None
        before; a claim of no lab volume maps to None: an empty filesystem)."""
        ns = pod["metadata"]["namespace"]
        found: dict[str, world.VolumeSpec | None] = {}
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = self.kube.current(R_PVCS, ns, claim)
            if pvc is None or (pvc.get("status") or {}).get("phase") != "Bound":
                return None
            pv = self.kube.current(R_PVS, None, (pvc.get("spec") or {}).get("volumeName") or "")
            handle = ((pv or {}).get("spec") or {}).get("csi", {}).get("volumeHandle", "")
            lh = self.kube.current(R_LH_VOLUMES, world.LONGHORN_NS, handle) if handle else None
            if lh is not None and (lh.get("status") or {}).get("restoreRequired"):
                return None  # Longhorn attaches a volume for a workload only once restored
            found[claim] = self.pod_lab_volume(handle, lh)
        return found

    def pod_lab_volume(self, handle: str, lh: dict[str, Any] | None) -> world.VolumeSpec | None:
        url = str(((lh or {}).get("spec") or {}).get("fromBackup") or "")
        source = parse_qs(urlsplit(url).query).get("volume", [handle])[0] if url else handle
        return next((v for v in world.VOLUMES if v.name == source), None)

    async def start_pod(self, pod: dict[str, Any]) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        volumes = self.pod_volumes(pod)
        if volumes is None or not self.due(("pod-start", ns, name), self.t.pod_start):
            return
        self.forget("pod-start", ns, name)
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
        url = {c: self.pod_backup(pod, c) for c in volumes}
        code, output = await asyncio.to_thread(self.run_pod, pod, container, volumes, url)
        self.kube.pod_logs[(ns, name)] = output
        reason = "Completed" if code == 0 else "Error"
        await self.patch(R_PODS, ns, name, {"status": {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [{"name": container.get("name", ""), "ready": False,
                                   "restartCount": 0, "image": container.get("image", ""),
                                   "imageID": f"{container.get('image', '')}@sha256:{'0' * 64}",
                                   "state": {"terminated": {
                                       "exitCode": code, "reason": reason,
                                       "finishedAt": now_iso()}}}]}})
        self.state.record(f"pod {ns}/{name} ran: exit {code}")

    def pod_backup(self, pod: dict[str, Any], claim: str) -> str:
        ns = pod["metadata"]["namespace"]
        pvc = self.kube.current(R_PVCS, ns, claim) or {}
        lh = self.kube.current(R_LH_VOLUMES, world.LONGHORN_NS,
                               (pvc.get("spec") or {}).get("volumeName") or "") or {}
        url = str((lh.get("spec") or {}).get("fromBackup") or "")
        return parse_qs(urlsplit(url).query).get("backup", [""])[0] if url else ""

    def run_pod(self, pod: dict[str, Any], container: dict[str, Any],
            volumes: dict[str, world.VolumeSpec | None], backups: dict[str, str]
            ) -> tuple[int, str]:
        """Run the container's command with its mounts mapped; (exit code, output)."""
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in (pod.get("spec") or {}).get("volumes") or []
                  if v.get("persistentVolumeClaim")}
        root = Path(tempfile.mkdtemp(prefix="drbot-lab-pod-"))
        try:
            mounts: dict[str, Path] = {}
            for i, mount in enumerate(container.get("volumeMounts") or []):
                claim = claims.get(mount.get("name", ""))
                if claim is None:
                    continue
                folder = root / f"m{i}"
                vol = volumes.get(claim)
                if vol is None:
                    folder.mkdir()
                else:
                    volume_files(folder, vol)
                    with self.state.lock:
                        wrong = backups.get(claim, "") in self.state.wrong_content_backups
                    if wrong:
                        (folder / "README").write_text("lab: other data than was backed up\n")
                mounts[str(mount["mountPath"]).rstrip("/")] = folder
            argv = [self.pod_arg(a, mounts) for a in container.get("command") or []]
            argv += [self.pod_arg(a, mounts) for a in container.get("args") or []]
            with self.state.lock:
                self.state.pod_runs.append((f"{pod['metadata']['namespace']}/"
                                            f"{pod['metadata']['name']}", list(argv)))
            try:
                done = subprocess.run(argv, cwd=root, env=_ENV, capture_output=True,  # noqa: S603
                                      timeout=RUN_TIMEOUT, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return 128, f"lab kubelet: {exc}\n"
            return done.returncode, (done.stdout + done.stderr).decode(errors="replace")
        finally:
            shutil.rmtree(root, ignore_errors=True)

    @staticmethod
    def pod_arg(arg: str, mounts: dict[str, Path]) -> str:
        for path, folder in mounts.items():
            if arg == path or arg.startswith(path + "/"):
                return str(folder) + arg[len(path):]
        return str(arg)

"""Longhorn volumes and their replicas: reading them, and waiting until every replica is healthy.

Replica health follows Longhorn's own test (``datastore.IsAvailableHealthyReplica``): no
deletionTimestamp, ``spec.failedAt`` empty and ``spec.healthyAt`` set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from adapters.errors import NotFound
from adapters.kubernetes._wait import wait_for
from adapters.kubernetes.client import Kube
from adapters.kubernetes.longhorn._objects import NS, REBUILD_STATUS, engine_progress, name_of
from adapters.kubernetes.resources import LH_REPLICAS, LH_VOLUMES
from adapters.progress import Hooks, Progress


@dataclass
class Replica:
    name: str
    volume: str
    node: str
    healthy: bool
    state: str  # status.currentState
    failed_at: str


@dataclass
class Volume:
    name: str
    state: str
    robustness: str
    size: str
    number_of_replicas: int
    node: str  # status.currentNodeID (where it is attached)
    replicas: list[Replica] = field(default_factory=list)
    pvc: str = ""
    pvc_namespace: str = ""
    pv: str = ""
    last_backup: str = ""
    last_backup_at: str = ""
    restore_required: bool = False
    from_backup: str = ""

    @property
    def healthy_replicas(self) -> list[Replica]:
        return [r for r in self.replicas if r.healthy]


def _to_replica(obj: dict[str, Any]) -> Replica:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    meta = obj.get("metadata") or {}
    healthy = (
        not meta.get("deletionTimestamp")
        and not spec.get("failedAt")
        and bool(spec.get("healthyAt"))
    )
    volume = spec.get("volumeName") or (meta.get("labels") or {}).get("longhornvolume") or ""
    return Replica(
        name=name_of(obj),
        volume=str(volume),
        node=str(spec.get("nodeID") or ""),
        healthy=bool(healthy),
        state=str(status.get("currentState") or ""),
        failed_at=str(spec.get("failedAt") or ""),
    )


def _to_volume(obj: dict[str, Any], replicas: list[Replica]) -> Volume:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    k8s = status.get("kubernetesStatus") or {}
    return Volume(
        name=name_of(obj),
        state=str(status.get("state") or ""),
        robustness=str(status.get("robustness") or ""),
        size=str(spec.get("size") or ""),
        number_of_replicas=int(spec.get("numberOfReplicas") or 0),
        node=str(status.get("currentNodeID") or ""),
        replicas=sorted(replicas, key=lambda r: r.name),
        pvc=str(k8s.get("pvcName") or ""),
        pvc_namespace=str(k8s.get("namespace") or ""),
        pv=str(k8s.get("pvName") or ""),
        last_backup=str(status.get("lastBackup") or ""),
        last_backup_at=str(status.get("lastBackupAt") or ""),
        restore_required=bool(status.get("restoreRequired")),
        from_backup=str(spec.get("fromBackup") or ""),
    )


def label(volume: Volume) -> str:
    """A volume as people know it: its PVC's ``namespace/name``, else the volume's own name."""
    return f"{volume.pvc_namespace}/{volume.pvc}" if volume.pvc else volume.name


def list_replicas(kube: Kube, volume: str | None = None) -> list[Replica]:
    replicas = [_to_replica(o) for o in kube.list_objects(LH_REPLICAS, NS)]
    return [r for r in replicas if volume is None or r.volume == volume]


def list_volumes(kube: Kube) -> list[Volume]:
    """Every Longhorn volume with its replicas, sorted by name."""
    by_volume: dict[str, list[Replica]] = {}
    for replica in list_replicas(kube):
        by_volume.setdefault(replica.volume, []).append(replica)
    objs = kube.list_objects(LH_VOLUMES, NS)
    volumes = [_to_volume(o, by_volume.get(name_of(o), [])) for o in objs]
    return sorted(volumes, key=lambda v: v.name)


def get_volume(kube: Kube, name: str) -> Volume:
    try:
        obj = kube.get_object(LH_VOLUMES, name, NS)
    except NotFound:
        raise NotFound(f"Longhorn volume {name} does not exist.") from None
    return _to_volume(obj, list_replicas(kube, name))


def volumes_losing_last_replica(kube: Kube, node: str) -> list[str]:
    """Volumes with a replica on ``node`` and no healthy replica on any other node.

    Removing ``node`` would lose their last good copy: the preflight refuses on these.
    """
    losing = []
    for volume in list_volumes(kube):
        here = [r for r in volume.replicas if r.node == node]
        elsewhere = [r for r in volume.healthy_replicas if r.node != node]
        if here and not elsewhere:
            losing.append(volume.name)
    return losing


# ---- replica health -----------------------------------------------------------------------


def wait_replicas_healthy(
    kube: Kube,
    volumes: list[str] | None = None,
    *,
    timeout: float = 1800.0,
    poll: float = 10.0,
    hooks: Hooks | None = None,
) -> list[Volume]:
    """Wait until the volumes (default: every attached one) are healthy with all replicas.

    Healthy: robustness ``healthy`` and at least ``numberOfReplicas`` healthy replicas. Progress
    names each volume as people know it (``namespace/pvc``, else the volume) with how far its
    rebuild is, as its Engine reports it (``status.rebuildStatus``), and is sent when it moved.
    """
    hooks = hooks or Hooks()
    behind: dict[str, str] = {}
    start = time.monotonic()
    last = [""]

    def check() -> list[Volume] | None:
        chosen = [
            v for v in list_volumes(kube)
            if (v.name in volumes if volumes is not None else v.state == "attached")
        ]
        missing = set(volumes or []) - {v.name for v in chosen}
        if missing:
            raise NotFound(f"Longhorn volume(s) {', '.join(sorted(missing))} do not exist.")
        behind.clear()
        late = [v for v in chosen if v.robustness != "healthy"
                or len(v.healthy_replicas) < v.number_of_replicas]
        rebuilding = engine_progress(kube, REBUILD_STATUS) if late else {}
        for v in late:
            have = len(v.healthy_replicas)
            percent = f", rebuilding {rebuilding[v.name]}%" if v.name in rebuilding else ""
            behind[label(v)] = f"{v.robustness or 'unknown'}, {have}/{v.number_of_replicas} " \
                f"healthy replicas{percent}"
        if behind:
            text = f"Waiting for replicas: {', '.join(f'{k} ({v})' for k, v in behind.items())}"
            if text != last[0]:
                last[0] = text
                hooks.report(Progress(text, task="replicas", status="waiting"))
            return None
        return chosen

    result = wait_for(
        check, timeout=timeout, poll=poll, hooks=hooks,
        timeout_message=lambda err: (
            f"Longhorn volumes still not healthy after {timeout:.0f}s: "
            + ", ".join(f"{k} ({v})" for k, v in sorted(behind.items()))
            + ". Check the Longhorn UI for replicas that cannot be scheduled."
        ),
        cancel_message="Stopped waiting for Longhorn replicas to rebuild; they go on rebuilding.",
    )
    hooks.report(Progress(
        f"All {len(result)} volume(s) healthy after {time.monotonic() - start:.0f}s",
        task="replicas", status="done"))
    return result

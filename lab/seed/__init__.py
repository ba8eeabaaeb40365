"""The Kubernetes objects the lab's homelab (`lab.world`) starts as, one module per system.

`seed_objects` is all of them, in the order the emulator is seeded with them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lab.seed.cnpg import cnpg_objects
from lab.seed.flux import flux_objects
from lab.seed.k3s import etcd_snapshot_objects, namespaces, node_object, node_password_secret
from lab.seed.longhorn import longhorn_objects
from lab.seed.workloads import workload_objects
from lab.world import NODES, EtcdMember, LonghornVersion, vm_uuid


def seed_objects(
    now: datetime, members: dict[str, EtcdMember], snapshot_size: int, git_key: str,
    longhorn: LonghornVersion = LonghornVersion.V1_10,
) -> list[dict[str, Any]]:
    """Every Kubernetes object of the lab at start (`git_key`: Flux's fake Git deploy key,
    `longhorn`: the version its HelmRelease installs)."""
    objs = namespaces()
    for spec in NODES:
        objs.append(node_object(spec, members.get(spec.name), True, now))
        objs.append(node_password_secret(spec.name, vm_uuid(spec.name)))
    objs += flux_objects(now, git_key, longhorn.chart_version)
    objs += longhorn_objects(now)
    objs += cnpg_objects(now)
    objs += workload_objects(now)
    objs += etcd_snapshot_objects(now, snapshot_size)
    return objs

"""What every Longhorn custom object shares: the namespace it lives in, its name, its conditions."""

from __future__ import annotations

from typing import Any

from adapters.kubernetes.client import Kube
from adapters.kubernetes.resources import LH_ENGINES, LONGHORN_NAMESPACE

NS = LONGHORN_NAMESPACE
RESTORE_STATUS, REBUILD_STATUS = "restoreStatus", "rebuildStatus"


def name_of(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return {}


def engine_progress(kube: Kube, status_key: str) -> dict[str, int]:
    """Percent done per volume of what its Engine reports under ``status.<status_key>``:
    ``restoreStatus`` or ``rebuildStatus``, each a map from a replica's address to a status
    with ``progress`` (0-100) (longhorn-manager k8s/pkg/apis/longhorn/v1beta2/engine.go
    RestoreStatus, RebuildStatus). Only entries still at work count (a rebuild's
    ``isRebuilding``, a restore's ``isRestoring`` or no flag); the slowest replica is the
    volume's figure. One LIST of engines, whatever the number of volumes."""
    busy = {RESTORE_STATUS: "isRestoring", REBUILD_STATUS: "isRebuilding"}[status_key]
    progress: dict[str, int] = {}
    for engine in kube.list_objects(LH_ENGINES, NS):
        volume = str((engine.get("spec") or {}).get("volumeName") or "")
        per_replica = (engine.get("status") or {}).get(status_key) or {}
        values = [int(r.get("progress") or 0) for r in per_replica.values()
                  if isinstance(r, dict) and r.get(busy, True) is not False]
        if volume and values:
            progress[volume] = min(min(values), progress.get(volume, 100))
    return progress

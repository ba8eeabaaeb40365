"""Longhorn settings (``settings.longhorn.io``): a Setting's value is a string in its top-level
``value`` field (longhorn-manager ``k8s/pkg/apis/longhorn/v1beta2/setting.go``)."""

from __future__ import annotations

from adapters.errors import NotFound
from adapters.kubernetes.client import Kube
from adapters.kubernetes.longhorn._objects import NS
from adapters.kubernetes.resources import LH_SETTINGS

# How many engines on one node may restore a backup at once; Longhorn holds (backs off) the
# restores beyond it (its engine monitor counts them per node). Default 5; 0 disables restoring.
# Source: longhorn/longhorn enhancement "Concurrent Backup Restore Per Node Limit" (issue #4558).
RESTORE_LIMIT_SETTING = "concurrent-backup-restore-per-node-limit"
RESTORE_LIMIT_DEFAULT = 5


def get_setting(kube: Kube, name: str) -> str | None:
    """The setting's value, or None when Longhorn has no such setting (an older version)."""
    try:
        obj = kube.get_object(LH_SETTINGS, name, NS)
    except NotFound:
        return None
    value = obj.get("value")
    return None if value is None else str(value)


def restore_limit(kube: Kube) -> tuple[int, str]:
    """(concurrent restores per node, where that figure comes from)."""
    value = get_setting(kube, RESTORE_LIMIT_SETTING)
    if value is None:
        return RESTORE_LIMIT_DEFAULT, f"Longhorn's default (no {RESTORE_LIMIT_SETTING} setting)"
    try:
        return max(int(value), 0), f"Longhorn setting {RESTORE_LIMIT_SETTING}"
    except ValueError:
        return RESTORE_LIMIT_DEFAULT, f"Longhorn's default ({RESTORE_LIMIT_SETTING} is {value!r})"

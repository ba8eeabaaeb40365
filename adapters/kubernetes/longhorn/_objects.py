"""What every Longhorn custom object shares: the namespace it lives in, its name, its conditions."""

from __future__ import annotations

from typing import Any

from adapters.kubernetes.resources import LONGHORN_NAMESPACE

NS = LONGHORN_NAMESPACE


def name_of(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return {}

"""What each watched object must meet: a maximum age and a retention, from `inventory.backups`.

Per kind (Longhorn volume, CNPG cluster, etcd snapshots) the inventory gives a default; an
object's entry in `overrides` changes it, and an object matching `exclude` is not watched at all.
Objects are matched by any of their names (a Longhorn volume also by `namespace/pvc` and `pvc`),
and `exclude` entries may be shell patterns (`apps/scratch-*`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from bot.config.inventory import BackupPolicy, Backups
from bot.errors import ConfigError

KINDS = ("longhorn", "cnpg", "etcd")
TITLES = {"longhorn": "Longhorn volume", "cnpg": "CloudNativePG cluster",
          "etcd": "K3s etcd snapshots"}
OVERRIDE_KEYS = frozenset({"max_age_hours", "retention_days"})


@dataclass(frozen=True)
class BackupLimits:
    """The policy one object is held to."""

    max_age_hours: float
    retention_days: int

    @property
    def max_age_seconds(self) -> float:
        return self.max_age_hours * 3600

    def describe(self) -> str:
        keep = f", keep {self.retention_days} days" if self.retention_days else ""
        return f"every {hours(self.max_age_hours)}{keep}"


def hours(value: float) -> str:
    return f"{value:g}h"


def of_kind(backups: Backups, kind: str) -> BackupPolicy:
    if kind not in KINDS:
        raise ValueError(f"unknown backup kind {kind!r}")
    policy: BackupPolicy = getattr(backups, kind)
    return policy


def validate(backups: Backups) -> None:
    """Refuse override entries naming a setting that does not exist (a typo would go unnoticed)."""
    for kind in KINDS:
        for name, values in of_kind(backups, kind).overrides.items():
            unknown = sorted(set(values) - OVERRIDE_KEYS)
            if unknown:
                raise ConfigError(f"inventory: backups.{kind}.overrides.{name}: unknown setting(s) "
                                  f"{', '.join(unknown)}; use max_age_hours and/or retention_days")


def excluded(backups: Backups, kind: str, names: Iterable[str]) -> bool:
    patterns = of_kind(backups, kind).exclude
    return any(fnmatchcase(name, pattern) for name in names if name for pattern in patterns)


def limits(backups: Backups, kind: str, names: Iterable[str]) -> BackupLimits:
    """The limits for an object known by ``names`` (the first override that matches wins)."""
    policy = of_kind(backups, kind)
    values: dict[str, float] = {}
    for name in names:
        if name and name in policy.overrides:
            values = policy.overrides[name]
            break
    return BackupLimits(float(values.get("max_age_hours", policy.max_age_hours)),
                  int(values.get("retention_days", policy.retention_days)))

"""RTO estimates per scenario, only from what drbot measured, each with its basis and age.

Sources, best first: past succeeded runs of the scenario's runbook (the job records); for the
data restores inside it, drill restore times (the volume's own drill, else scaled by volume size
from the drills measured), then verification read rates; CloudNativePG recoveries from the
verification times of barman's restore. Nothing measured is "unknown", never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.readiness.history import Run, typical
from bot.watch.evaluate import span

if TYPE_CHECKING:
    from bot.config.inventory import Inventory

LONGHORN_DEFAULT_LIMIT = 5  # Longhorn's concurrent-backup-restore-per-node-limit default


@dataclass(frozen=True)
class Estimate:
    what: str
    seconds: float | None
    basis: str

    def render(self) -> str:
        value = "unknown" if self.seconds is None else span(self.seconds)
        return f"{self.what}: {value} ({self.basis})"


def ago(now: float, at: float) -> str:
    return f"{span(now - at)} ago"


def from_runs(what: str, command: str, listed: list[Run], now: float) -> Estimate:
    if not listed:
        return Estimate(what, None, f"no succeeded /dr {command} run recorded")
    newest = listed[0]
    if len(listed) == 1:
        return Estimate(what, newest.seconds, f"the /dr {command} run of job {newest.job_id}, "
                        f"{ago(now, newest.ended)}")
    return Estimate(what, typical(listed), f"median of {len(listed)} /dr {command} runs, newest "
                    f"job {newest.job_id} {ago(now, newest.ended)}")


@dataclass(frozen=True)
class Rate:
    """Bytes per second restored, with where it comes from."""

    per_second: float
    basis: str


def restore_rate(drills: dict[str, Any], verifications: dict[str, Any], now: float
                 ) -> Rate | None:
    """Longhorn restore speed: from drills (the real restore path), else verification reads."""
    timed = [r for k, r in drills.items() if k.startswith("longhorn:")
             and r.restore_seconds and r.size]
    if timed:
        return _rate(timed, now, [(r.size, r.restore_seconds, r.drilled_at) for r in timed],
                     "drill restore(s)", "")
    read = [r for k, r in verifications.items() if k.startswith("longhorn:")
            and r.duration and r.bytes_read]
    if read:
        return _rate(read, now, [(r.bytes_read, r.duration, r.verified_at) for r in read],
                     "verification read(s)", " (no drill measured)")
    return None


def _rate(found: list[Any], now: float, measured: list[tuple[float, float, float]],
          what: str, aside: str) -> Rate:
    """Bytes per second over (bytes, seconds, when) measurements, with the basis it names."""
    newest = max(when for _, _, when in measured)
    return Rate(sum(b for b, _, _ in measured) / sum(t for _, t, _ in measured),
                f"scaled by size from {len(found)} {what}, newest {ago(now, newest)}{aside}")


def volume_seconds(pvc: str, size: int, drills: dict[str, Any], rate: Rate | None
                   ) -> tuple[float | None, str]:
    own = drills.get(f"longhorn:{pvc}")
    if own is not None and own.restore_seconds:
        return float(own.restore_seconds), "its own drill"
    if rate is None or size <= 0:
        return None, ""
    return size / rate.per_second, rate.basis


def restores(what: str, volumes: list[tuple[str, int]], drills: dict[str, Any],
             rate: Rate | None, inventory: Inventory) -> Estimate:
    """Restoring ``volumes`` ((pvc or volume, bytes)) in parallel as the runbooks do: at least
    the longest one, at least the total over the restores that run at once."""
    if not volumes:
        return Estimate(what, 0.0, "nothing to restore")
    estimates = [volume_seconds(pvc, size, drills, rate) for pvc, size in volumes]
    unknown = [pvc for (pvc, _), (secs, _) in zip(volumes, estimates, strict=True) if secs is None]
    if unknown:
        return Estimate(what, None, f"no drill or verification measured to scale from "
                        f"({len(unknown)} of {len(volumes)} volumes, e.g. {unknown[0]})")
    seconds = [s for s, _ in estimates if s is not None]
    at_once = (inventory.restores.per_node_limit or LONGHORN_DEFAULT_LIMIT) * max(
        1, len(inventory.nodes))
    total = max(max(seconds), sum(seconds) / at_once)
    own = sum(1 for _, basis in estimates if basis == "its own drill")
    basis = "; ".join(filter(None, [f"{own} from their own drill" if own else "",
                                    rate.basis if rate and own < len(volumes) else ""]))
    return Estimate(what, total, f"{len(volumes)} volume(s), up to {at_once} at once: {basis}")


def cnpg_recovery(verifications: dict[str, Any], clusters: int, now: float) -> Estimate:
    what = "CloudNativePG recovery from the object store"
    if not clusters:
        return Estimate(what, 0.0, "no CloudNativePG cluster")
    timed = [r for k, r in verifications.items() if k.startswith("cnpg:") and r.ok and r.duration]
    if not timed:
        return Estimate(what, None, "no passing CloudNativePG verification measured")
    newest = max(r.verified_at for r in timed)
    return Estimate(what, max(r.duration for r in timed), f"the longest of {len(timed)} barman "
                    f"restore verification(s) of {clusters} cluster(s), newest {ago(now, newest)}")


def total(parts: list[Estimate]) -> Estimate:
    known = [p for p in parts if p.seconds is not None]
    if len(known) == len(parts):
        return Estimate("estimate", sum(p.seconds or 0.0 for p in parts),
                        "sum of the parts below")
    floor = sum(p.seconds or 0.0 for p in known)
    return Estimate("estimate", None, "parts below unmeasured"
                    + (f"; the measured parts alone take {span(floor)}" if floor else ""))

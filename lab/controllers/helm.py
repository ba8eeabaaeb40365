"""Flux's helm-controller, reduced to what happens to a release's objects on a reconcile.

Following fluxcd/helm-controller:
- ``api/v2/annotations.go`` (``ShouldHandleForceRequest``): ``reconcile.fluxcd.io/forceAt`` asks
  for a one-off upgrade, handled only when it equals ``reconcile.fluxcd.io/requestedAt`` and
  neither token was handled before; ``status.lastHandledForceAt`` takes the annotation's value
  whenever it is present, handled or not.
- ``internal/reconcile/atomic_release.go`` (``actionForState``): an in-sync release is upgraded
  only when a force was requested; a release whose objects drifted (one was deleted) is
  corrected (``correct_cluster_drift.go``) only when ``spec.driftDetection.mode`` is
  ``enabled``; with drift detection off (the default) or ``warn`` nothing is recreated.
- An upgrade re-creates every object of the chart that is missing: Helm's kube client creates a
  target it does not find (helm/helm ``pkg/kube/client.go``, ``Update``), and the release
  revision in ``status.history`` goes up by one.

The objects a release renders are the seed's (``lab.seed.flux.release_objects``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kmock

from lab.controllers.base import ControllerBase
from lab.seed.flux import release_objects, release_snapshot

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
FORCE_AT = "reconcile.fluxcd.io/forceAt"
DRIFT_ENABLED = "enabled"


def force_requested(obj: dict[str, Any]) -> bool:
    """helm-controller's ShouldHandleForceRequest, before it updates lastHandledForceAt."""
    annotations = obj["metadata"].get("annotations") or {}
    status = obj.get("status") or {}
    force, token = annotations.get(FORCE_AT), annotations.get(REQUESTED_AT)
    return (force is not None and force == token
            and status.get("lastHandledReconcileAt") != token
            and status.get("lastHandledForceAt") != force)


def resource_of(obj: dict[str, Any]) -> Any:
    group, _, version = obj["apiVersion"].rpartition("/")
    return kmock.resource(group, version, obj["kind"].lower() + "s")


class HelmController(ControllerBase):
    """What a handled HelmRelease reconcile does to the release and its objects."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.forced: list[tuple[str, str, str]] = []  # the releases force-upgraded, in order

    def missing_objects(self, ns: str, name: str) -> list[dict[str, Any]]:
        return [o for o in release_objects(ns, name)
                if self.kube.current(resource_of(o), o["metadata"].get("namespace"),
                                     o["metadata"]["name"]) is None]

    async def helm_release(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Run the release action a reconcile of ``obj`` leads to; the status fields it sets."""
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        ns, name = meta.get("namespace", ""), meta["name"]
        body: dict[str, Any] = {}
        force = (meta.get("annotations") or {}).get(FORCE_AT)
        if force is not None:
            body["lastHandledForceAt"] = force
        missing = self.missing_objects(ns, name)
        if force_requested(obj):
            self.forced.append(("HelmRelease", ns, name))
            history = list(status.get("history") or [])
            latest = history[0] if history else {}
            revision = int(latest.get("version") or 0) + 1
            chart = (spec.get("chart") or {}).get("spec") or {}
            body["history"] = [release_snapshot(
                ns, name, str(chart.get("chart") or name), str(chart.get("version") or ""),
                revision, datetime.now(UTC)), *history[:4]]
            await self.recreate(missing, f"forced upgrade of HelmRelease {ns}/{name}")
        elif missing and (spec.get("driftDetection") or {}).get("mode") == DRIFT_ENABLED:
            await self.recreate(missing, f"drift correction of HelmRelease {ns}/{name}")
        elif missing:
            self.state.record(f"flux: HelmRelease {ns}/{name} in sync; drift detection off, "
                              f"{len(missing)} deleted object(s) left missing")
        return body

    async def recreate(self, objects: list[dict[str, Any]], why: str) -> None:
        for obj in objects:
            await self.create(resource_of(obj), obj["metadata"].get("namespace"), obj)
            self.state.record(f"flux: {obj['kind']} {obj['metadata'].get('namespace')}/"
                              f"{obj['metadata']['name']} re-created by the {why}")

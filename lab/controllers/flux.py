"""Flux's controllers: an object whose generation changed, or that carries a reconcile request
not handled yet, is Reconciling and then, `Timings.flux_reconcile` later, reconciled (Ready,
except grafana's HelmRelease, whose upgrade keeps failing). Suspended objects are left alone.
"""

from __future__ import annotations

from typing import Any

import kmock

from lab.controllers.base import (
    R_GITREPOSITORIES,
    R_KUSTOMIZATIONS,
    ControllerBase,
    condition,
)
from lab.kube import now_iso
from lab.seed.flux import GRAFANA_FAILURE, REVISION

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"

FLUX = [
    R_KUSTOMIZATIONS,
    kmock.resource("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
    R_GITREPOSITORIES,
    kmock.resource("source.toolkit.fluxcd.io", "v1", "helmrepositories"),
    kmock.resource("source.toolkit.fluxcd.io", "v1", "helmcharts"),
]
FAILING_RELEASES = {("monitoring", "grafana")}


class FluxController(ControllerBase):
    """The source, kustomize and helm controllers, reduced to their status."""

    async def flux(self) -> None:
        for res in FLUX:
            for obj in self.kube.live(res):
                await self.flux_one(res, obj)

    async def flux_one(self, res: Any, obj: dict[str, Any]) -> None:
        meta, status = obj["metadata"], obj.get("status") or {}
        key = ("flux", res.plural, meta.get("namespace", ""), meta["name"])
        if obj.get("spec", {}).get("suspend"):
            self.forget(*key)
            return
        token = (meta.get("annotations") or {}).get(REQUESTED_AT)
        generation = int(meta.get("generation") or 1)
        wanted = (
            token is not None and token != status.get("lastHandledReconcileAt")
        ) or generation != int(status.get("observedGeneration") or 0)
        if not wanted:
            self.forget(*key)
            return
        if not self.due(key, self.t.flux_reconcile):
            if condition(obj, "Reconciling").get("status") != "True":
                await self.flux_status(res, obj, progressing=True, token=None)
            return
        self.forget(*key)
        await self.flux_status(res, obj, progressing=False, token=token)

    async def flux_status(
        self, res: Any, obj: dict[str, Any], progressing: bool, token: str | None
    ) -> None:
        meta = obj["metadata"]
        generation = int(meta.get("generation") or 1)
        failing = (
            meta.get("namespace"),
            meta["name"],
        ) in FAILING_RELEASES and res.plural == "helmreleases"
        others = [
            c
            for c in (obj.get("status") or {}).get("conditions") or []
            if c.get("type") not in ("Ready", "Reconciling", "Stalled")
        ]
        stamp = now_iso()
        if progressing:
            conditions = [
                {
                    "type": "Reconciling",
                    "status": "True",
                    "reason": "Progressing",
                    "message": "reconciliation in progress",
                    "observedGeneration": generation,
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Ready",
                    "status": "Unknown",
                    "reason": "Progressing",
                    "message": "reconciliation in progress",
                    "observedGeneration": generation,
                    "lastTransitionTime": stamp,
                },
                *others,
            ]
            await self.patch(
                res, meta.get("namespace"), meta["name"], {"status": {"conditions": conditions}}
            )
            return
        if failing:
            ready = {
                "type": "Ready",
                "status": "False",
                "reason": "UpgradeFailed",
                "message": GRAFANA_FAILURE,
            }
        elif res.plural == "kustomizations":
            ready = {
                "type": "Ready",
                "status": "True",
                "reason": "ReconciliationSucceeded",
                "message": f"Applied revision: {REVISION}",
            }
        elif res.plural == "helmreleases":
            ready = {
                "type": "Ready",
                "status": "True",
                "reason": "UpgradeSucceeded",
                "message": "Helm upgrade succeeded for release "
                f"{meta.get('namespace')}/{meta['name']}",
            }
        else:
            ready = {
                "type": "Ready",
                "status": "True",
                "reason": "Succeeded",
                "message": f"stored artifact for revision '{REVISION}'",
            }
        ready.update({"observedGeneration": generation, "lastTransitionTime": stamp})
        body: dict[str, Any] = {"observedGeneration": generation, "conditions": [ready, *others]}
        if token is not None:
            body["lastHandledReconcileAt"] = token
        if res.plural == "kustomizations" and not failing:
            body["lastAppliedRevision"] = REVISION
            body["lastAttemptedRevision"] = REVISION
        await self.patch(res, meta.get("namespace"), meta["name"], {"status": body})
        self.state.record(
            f"flux: {res.plural[:-1]} {meta.get('namespace')}/{meta['name']} "
            f"reconciled, Ready={ready['status']}"
        )

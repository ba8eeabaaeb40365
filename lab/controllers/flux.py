"""Flux's controllers: an object whose generation changed, or that carries a reconcile request
not handled yet, is Reconciling and then, `Timings.flux_reconcile` later, reconciled (Ready,
except grafana's HelmRelease, whose upgrade keeps failing). Suspended objects are left alone.

Following fluxcd/kustomize-controller (internal/controller/kustomization_controller.go):
- a Kustomization is applied as soon as it exists, unless a `dependsOn` entry is not Ready: then
  it stays `Ready=False, reason DependencyNotReady`, with no applied revision, and is retried;
- the `flux-system` Kustomization, once reconciled, applies the fleet repository's cluster path,
  which re-creates the other Kustomizations after the datastore was lost (new objects, no status);
- a Kustomization that installs HelmReleases and waits for them (`spec.wait`) becomes Ready only
  once they are installed: `Timings.infrastructure_install` for the `infrastructure` layer;
- a HelmRelease's deleted objects come back only through a forced upgrade or drift correction
  (`lab.controllers.helm`).

The lab's world sets what Git holds (`fleet`, `revision`) and the releases that fail
(`outcomes`); unit tests run the same controllers alone against the emulator with their own
(`lab.fakes.flux`), and read what was reconciled (`handled`) and force-upgraded (`forced`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kmock

from lab import world
from lab.controllers.base import (
    R_GITREPOSITORIES,
    R_KUSTOMIZATIONS,
    condition,
)
from lab.controllers.helm import HelmController
from lab.kube_wire import now_iso
from lab.seed.flux import BOOTSTRAP_NAME, GRAFANA_FAILURE, REVISION, fleet_kustomizations

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"

FLUX = [
    R_KUSTOMIZATIONS,
    kmock.resource("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
    R_GITREPOSITORIES,
    kmock.resource("source.toolkit.fluxcd.io", "v1", "helmrepositories"),
    kmock.resource("source.toolkit.fluxcd.io", "v1", "helmcharts"),
    kmock.resource("source.toolkit.fluxcd.io", "v1", "ocirepositories"),
    kmock.resource("source.toolkit.fluxcd.io", "v1", "buckets"),
]
KINDS = {"kustomizations": "Kustomization", "helmreleases": "HelmRelease",
         "gitrepositories": "GitRepository", "helmrepositories": "HelmRepository",
         "helmcharts": "HelmChart", "ocirepositories": "OCIRepository", "buckets": "Bucket"}
# (kind, namespace, name) -> (ready, reason, message) of every reconcile of that object
Outcomes = dict[tuple[str, str, str], tuple[bool, str, str]]
# The lab's grafana release keeps failing its upgrade.
LAB_OUTCOMES: Outcomes = {("HelmRelease", "monitoring", "grafana"):
                          (False, "UpgradeFailed", GRAFANA_FAILURE)}
INSTALLS_RELEASES = {"infrastructure"}  # the layer that installs Longhorn and CNPG, wait: true


class FluxController(HelmController):
    """The source, kustomize and helm controllers, reduced to their status."""

    fleet = True  # flux-system, reconciled, applies the fleet repository (the lab's world)
    revision = REVISION  # the revision the sources hold

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: Outcomes = dict(LAB_OUTCOMES)
        self.handled: list[tuple[str, str, str]] = []  # (kind, namespace, name), in order

    async def flux(self) -> None:
        if self.fleet:
            await self.apply_fleet()
        for res in FLUX:
            for obj in self.kube.live(res):
                await self.flux_one(res, obj)

    async def apply_fleet(self) -> None:
        """`flux-system`, reconciled, creates the fleet's Kustomizations that do not exist."""
        sync = self.kube.current(R_KUSTOMIZATIONS, world.FLUX_NS, BOOTSTRAP_NAME)
        if sync is None or not (sync.get("status") or {}).get("lastAppliedRevision"):
            return
        have = {k["metadata"]["name"] for k in self.kube.live(R_KUSTOMIZATIONS)}
        for obj in fleet_kustomizations(datetime.now(UTC)):
            if obj["metadata"]["name"] in have:
                continue
            fresh = {**obj, "metadata": {**obj["metadata"], "labels": {
                "kustomize.toolkit.fluxcd.io/name": BOOTSTRAP_NAME,
                "kustomize.toolkit.fluxcd.io/namespace": world.FLUX_NS}}}
            fresh.pop("status", None)
            await self.create(R_KUSTOMIZATIONS, world.FLUX_NS, fresh)
            self.state.record(f"flux: Kustomization {obj['metadata']['name']} created from Git")

    def waiting_for(self, obj: dict[str, Any]) -> str:
        """The first dependsOn entry that is not Ready ("" when none)."""
        for dep in (obj.get("spec") or {}).get("dependsOn") or []:
            ns = dep.get("namespace") or obj["metadata"].get("namespace")
            found = self.kube.current(R_KUSTOMIZATIONS, ns, dep["name"])
            if found is None or condition(found, "Ready").get("status") != "True":
                return f"{ns}/{dep['name']}"
        return ""

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
        blocker = self.waiting_for(obj) if res == R_KUSTOMIZATIONS else ""
        if blocker:
            self.forget(*key)
            if condition(obj, "Ready").get("reason") != "DependencyNotReady":
                await self.patch(res, meta.get("namespace"), meta["name"], {"status": {
                    "conditions": [{"type": "Ready", "status": "False",
                                    "reason": "DependencyNotReady",
                                    "message": f"dependency '{blocker}' is not ready",
                                    "lastTransitionTime": now_iso()}]}})
            return
        delay = self.t.flux_reconcile
        if res == R_KUSTOMIZATIONS and meta["name"] in INSTALLS_RELEASES and not status.get(
                "lastAppliedRevision"):
            delay = self.t.infrastructure_install  # a first install waits for its releases
        if not self.due(key, delay):
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
        key = (KINDS[res.plural], meta.get("namespace", ""), meta["name"])
        outcome = self.outcomes.get(key)
        failing = outcome is not None and not outcome[0]
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
        if outcome is not None:
            ready = {
                "type": "Ready",
                "status": "True" if outcome[0] else "False",
                "reason": outcome[1],
                "message": outcome[2],
            }
        elif res.plural == "kustomizations":
            ready = {
                "type": "Ready",
                "status": "True",
                "reason": "ReconciliationSucceeded",
                "message": f"Applied revision: {self.revision}",
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
                "message": f"stored artifact for revision '{self.revision}'",
            }
        ready.update({"observedGeneration": generation, "lastTransitionTime": stamp})
        body: dict[str, Any] = {"observedGeneration": generation, "conditions": [ready, *others]}
        if res.plural == "helmreleases" and not failing:
            body.update(await self.helm_release(obj))  # what happens to the release's objects
        if token is not None:
            body["lastHandledReconcileAt"] = token
        if res.plural == "kustomizations" and not failing:
            body["lastAppliedRevision"] = self.revision
            body["lastAttemptedRevision"] = self.revision
        await self.patch(res, meta.get("namespace"), meta["name"], {"status": body})
        self.handled.append(key)
        self.state.record(
            f"flux: {res.plural[:-1]} {meta.get('namespace')}/{meta['name']} "
            f"reconciled, Ready={ready['status']}"
        )

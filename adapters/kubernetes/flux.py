"""Flux CD: Kustomizations and HelmReleases, their state, reconcile, suspend and resume.

Reconcile follows the ``flux reconcile`` CLI: refuse a suspended object, merge-patch the
``reconcile.fluxcd.io/requestedAt`` annotation with a fresh RFC3339Nano token (the source first
with ``with_source``), then wait until the controller has handled exactly that token
(``status.lastHandledReconcileAt``) and the Ready condition is current and True.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.errors import AdapterError, NotFound, Refused
from adapters.kubernetes._wait import wait_for
from adapters.kubernetes.client import Kube
from adapters.kubernetes.resources import (
    BUCKETS,
    GITREPOSITORIES,
    HELMCHARTS,
    HELMRELEASES,
    HELMREPOSITORIES,
    KUSTOMIZATIONS,
    OCIREPOSITORIES,
    Resource,
)
from adapters.progress import Hooks, Progress

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
# helm-controller api/v2/annotations.go: a one-off forced upgrade (or install) of a HelmRelease,
# handled only when its value equals requestedAt's; the controller copies it to
# status.lastHandledForceAt.
FORCE_AT = "reconcile.fluxcd.io/forceAt"
DEFAULT_NAMESPACE = "flux-system"

_SOURCES: dict[str, Resource] = {
    r.kind: r for r in (GITREPOSITORIES, OCIREPOSITORIES, BUCKETS, HELMCHARTS, HELMREPOSITORIES)
}
# Served at v1beta2 by Flux releases older than the one that made them v1.
_OLDER_VERSIONS: dict[str, str] = {"OCIRepository": "v1beta2", "Bucket": "v1beta2"}
_KINDS: dict[str, Resource] = {
    "kustomization": KUSTOMIZATIONS,
    "ks": KUSTOMIZATIONS,
    "helmrelease": HELMRELEASES,
    "hr": HELMRELEASES,
}


@dataclass
class Kustomization:
    """A Flux Kustomization as drbot sees it."""

    name: str
    namespace: str
    suspended: bool
    ready: bool | None  # None: the Ready condition is Unknown or absent
    reason: str
    message: str
    revision: str  # status.lastAppliedRevision
    last_handled: str  # status.lastHandledReconcileAt
    source_kind: str
    source_name: str
    source_namespace: str
    depends_on: list[str] = field(default_factory=list)  # spec.dependsOn as namespace/name


@dataclass
class HelmRelease:
    """A Flux HelmRelease (helm.toolkit.fluxcd.io/v2) as drbot sees it."""

    name: str
    namespace: str
    suspended: bool
    ready: bool | None
    reason: str
    message: str
    revision: str  # the chart version last attempted
    last_handled: str
    chart: str  # chart name (chart template) or "" with chartRef
    source_kind: str  # chartRef kind, or the chart template's sourceRef kind
    source_name: str
    source_namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    # spec.driftDetection.mode: only "enabled" makes helm-controller put back an object of the
    # release that was deleted or changed (fluxcd/helm-controller docs, drift detection; off by
    # default). Otherwise only a forced upgrade (reconcile.fluxcd.io/forceAt) does.
    drift_detection: str = ""
    target_namespace: str = ""  # spec.targetNamespace: where the release's objects go
    release_name: str = ""  # spec.releaseName, else [<targetNamespace>-]<name>

    @property
    def installs_into(self) -> str:
        """The namespace Helm puts the release's (namespaced) objects in."""
        return self.target_namespace or self.namespace


# ---- reading state ---------------------------------------------------------------------


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in obj.get("status", {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return {}


def _ready(obj: dict[str, Any]) -> tuple[bool | None, str, str]:
    cond = _condition(obj, "Ready")
    value = {"True": True, "False": False}.get(str(cond.get("status")))
    return value, str(cond.get("reason") or ""), str(cond.get("message") or "")


def _meta(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata", {})
    return str(meta.get("name", "")), str(meta.get("namespace", ""))


def _to_kustomization(obj: dict[str, Any]) -> Kustomization:
    name, namespace = _meta(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ready, reason, message = _ready(obj)
    ref = spec.get("sourceRef") or {}
    return Kustomization(
        name=name,
        namespace=namespace,
        suspended=bool(spec.get("suspend")),
        ready=ready,
        reason=reason,
        message=message,
        revision=str(status.get("lastAppliedRevision") or ""),
        last_handled=str(status.get("lastHandledReconcileAt") or ""),
        source_kind=str(ref.get("kind") or ""),
        source_name=str(ref.get("name") or ""),
        source_namespace=str(ref.get("namespace") or namespace),
        depends_on=[f"{d.get('namespace') or namespace or DEFAULT_NAMESPACE}/{d.get('name')}"
                    for d in spec.get("dependsOn") or [] if isinstance(d, dict)],
    )


def _to_helmrelease(obj: dict[str, Any]) -> HelmRelease:
    name, namespace = _meta(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ready, reason, message = _ready(obj)
    chart_spec = (spec.get("chart") or {}).get("spec") or {}
    ref = spec.get("chartRef") or chart_spec.get("sourceRef") or {}
    history = status.get("history") or [{}]
    revision = status.get("lastAttemptedRevision") or (history[0] or {}).get("chartVersion")
    return HelmRelease(
        name=name,
        namespace=namespace,
        suspended=bool(spec.get("suspend")),
        ready=ready,
        reason=reason,
        message=message,
        revision=str(revision or ""),
        last_handled=str(status.get("lastHandledReconcileAt") or ""),
        chart=str(chart_spec.get("chart") or ""),
        source_kind=str(ref.get("kind") or ""),
        source_name=str(ref.get("name") or ""),
        source_namespace=str(ref.get("namespace") or namespace),
        labels=dict(obj.get("metadata", {}).get("labels") or {}),
        drift_detection=str((spec.get("driftDetection") or {}).get("mode") or "disabled"),
        target_namespace=str(spec.get("targetNamespace") or ""),
        release_name=_release_name(name, spec),
    )


def _release_name(name: str, spec: dict[str, Any]) -> str:
    """helm-controller's release name (api/v2 HelmRelease.GetReleaseName, without its shortening
    of names over 53 characters): spec.releaseName, else [<targetNamespace>-]<name>."""
    if spec.get("releaseName"):
        return str(spec["releaseName"])
    target = spec.get("targetNamespace")
    return f"{target}-{name}" if target else name


def _sorted(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objs, key=lambda o: (_meta(o)[1], _meta(o)[0]))


def _get(kube: Kube, res: Resource, name: str, namespace: str) -> dict[str, Any]:
    try:
        return kube.get_object(res, name, namespace)
    except NotFound:
        raise NotFound(
            f"{res.kind} {namespace}/{name} does not exist in the cluster; check the name "
            f"(kubectl get {res} -A lists them)."
        ) from None


def list_kustomizations(kube: Kube, namespace: str | None = None) -> list[Kustomization]:
    """Every Kustomization (in ``namespace``, or in all namespaces), sorted by namespace/name."""
    return [_to_kustomization(o) for o in _sorted(kube.list_objects(KUSTOMIZATIONS, namespace))]


def get_kustomization(kube: Kube, name: str, namespace: str = DEFAULT_NAMESPACE) -> Kustomization:
    """One Kustomization; NotFound names it."""
    return _to_kustomization(_get(kube, KUSTOMIZATIONS, name, namespace))


def list_helmreleases(kube: Kube, namespace: str | None = None) -> list[HelmRelease]:
    """Every HelmRelease (in ``namespace``, or in all namespaces), sorted by namespace/name."""
    return [_to_helmrelease(o) for o in _sorted(kube.list_objects(HELMRELEASES, namespace))]


def applied_by(kube: Kube, name: str, namespace: str = DEFAULT_NAMESPACE) -> list[HelmRelease]:
    """The HelmReleases Kustomization ``namespace/name`` applied: kustomize-controller labels
    what it applies with ``kustomize.toolkit.fluxcd.io/name`` and ``/namespace``."""
    return [hr for hr in list_helmreleases(kube)
            if hr.labels.get("kustomize.toolkit.fluxcd.io/name") == name
            and hr.labels.get("kustomize.toolkit.fluxcd.io/namespace", namespace) == namespace]


def get_helmrelease(kube: Kube, name: str, namespace: str = DEFAULT_NAMESPACE) -> HelmRelease:
    """One HelmRelease; NotFound names it."""
    return _to_helmrelease(_get(kube, HELMRELEASES, name, namespace))


# ---- waiting on a reconcile --------------------------------------------------------------


def rfc3339nano(ns: int | None = None) -> str:
    """Now (or ``ns`` nanoseconds since the epoch) as Go's time.RFC3339Nano, in UTC."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def _is_current(obj: dict[str, Any]) -> bool:
    """kstatus's generation check: the controller has seen the latest spec."""
    generation = obj.get("metadata", {}).get("generation")
    if generation is None:
        return True
    observed = obj.get("status", {}).get("observedGeneration")
    if observed is not None and observed != generation:
        return False
    cond_observed = _condition(obj, "Ready").get("observedGeneration") or 0
    return not cond_observed or cond_observed == generation


def _verdict(obj: dict[str, Any], token: str, forced: bool = False) -> tuple[str, str]:
    """('done'|'failed'|'waiting', explanation) for an object we asked to reconcile (and, when
    ``forced``, to upgrade: helm-controller records that in status.lastHandledForceAt)."""
    status = obj.get("status", {})
    if status.get("lastHandledReconcileAt") != token or (
            forced and status.get("lastHandledForceAt") != token):
        return "waiting", "the controller has not handled the request yet"
    ready, reason, message = _ready(obj)
    stalled = _condition(obj, "Stalled")
    if stalled.get("status") == "True":
        return "failed", message or str(stalled.get("message") or "stalled")
    if not _is_current(obj) or _condition(obj, "Reconciling").get("status") == "True":
        return "waiting", f"reconciling ({reason}: {message})" if message else "reconciling"
    if ready is True:
        return "done", message
    if ready is False:
        return "failed", message or reason or "Ready is False"
    return "waiting", f"Ready is Unknown ({reason}: {message})" if message else "Ready is Unknown"


def _describe_last(obj: dict[str, Any] | None, token: str, forced: bool = False) -> str:
    if obj is None:
        return "it could not be read"
    if obj.get("status", {}).get("lastHandledReconcileAt") != token:
        return (
            "Flux has not handled the request yet (is its controller running? "
            "kubectl -n flux-system get pods)"
        )
    if forced and obj.get("status", {}).get("lastHandledForceAt") != token:
        return ("Flux has not handled the forced upgrade (status.lastHandledForceAt): its "
                "helm-controller may predate reconcile.fluxcd.io/forceAt")
    ready, reason, message = _ready(obj)
    shown = {True: "True", False: "False", None: "Unknown"}[ready]
    return f"last Ready={shown} {reason}: {message}".rstrip(": ")


def _wait_handled(
    kube: Kube,
    res: Resource,
    name: str,
    namespace: str,
    token: str,
    *,
    timeout: float,
    poll: float,
    hooks: Hooks,
    forced: bool = False,
) -> dict[str, Any]:
    what = f"{res.kind} {namespace}/{name}"
    seen: dict[str, Any] = {"obj": None, "said": None}

    def check() -> dict[str, Any] | None:
        obj = kube.get_object(res, name, namespace)
        seen["obj"] = obj
        state, why = _verdict(obj, token, forced)
        if (state, why) != seen["said"]:
            seen["said"] = (state, why)
            status = {"done": "ready", "failed": "failed"}.get(state, "waiting")
            hooks.report(
                Progress(f"{what}: {why or state}", target=what, task="reconcile", status=status)
            )
        if state == "failed":
            raise AdapterError(f"{what} failed to reconcile: {why}")
        return obj if state == "done" else None

    def on_timeout(last_error: str) -> str:
        text = (
            f"{what} did not finish reconciling within {timeout:.0f}s; "
            f"{_describe_last(seen['obj'], token, forced)}."
        )
        return text + (f" Last error: {last_error}" if last_error else "")

    return wait_for(
        check,
        timeout=timeout,
        poll=poll,
        hooks=hooks,
        timeout_message=on_timeout,
        cancel_message=(
            f"Stopped waiting for {what}; the reconcile request stays and Flux finishes it "
            "on its own."
        ),
    )


def _request(
    kube: Kube,
    res: Resource,
    name: str,
    namespace: str,
    *,
    timeout: float,
    poll: float,
    hooks: Hooks,
    extra: dict[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Annotate with a fresh token (plus ``extra`` merge-patch fields) and wait for it; with
    ``force`` the same token goes into ``reconcile.fluxcd.io/forceAt`` too (``flux reconcile hr
    --force``), and the wait is also for ``status.lastHandledForceAt``."""
    token = rfc3339nano()
    annotations = {REQUESTED_AT: token, **({FORCE_AT: token} if force else {})}
    patch: dict[str, Any] = {"metadata": {"annotations": annotations}}
    patch.update(extra or {})
    kube.patch_object(res, name, patch, namespace)
    what = f"{res.kind} {namespace}/{name}"
    asked = "force an upgrade of" if force else "reconcile"
    hooks.report(
        Progress(f"Asked Flux to {asked} {what}", target=what, task="reconcile", status="started")
    )
    return _wait_handled(
        kube, res, name, namespace, token, timeout=timeout, poll=poll, hooks=hooks, forced=force
    )


def _refuse_if_suspended(obj: dict[str, Any], res: Resource) -> None:
    if (obj.get("spec") or {}).get("suspend"):
        name, namespace = _meta(obj)
        raise Refused(
            f"{res.kind} {namespace}/{name} is suspended, so Flux would not reconcile it; "
            "resume it first if that is intended."
        )


def _reconcile(
    kube: Kube, res: Resource, name: str, namespace: str, *, timeout: float, poll: float,
    hooks: Hooks,
) -> dict[str, Any]:
    obj = _get(kube, res, name, namespace)
    _refuse_if_suspended(obj, res)
    return _request(kube, res, name, namespace, timeout=timeout, poll=poll, hooks=hooks)


def _source_resource(kind: str, owner: str) -> Resource:
    res = _SOURCES.get(kind)
    if res is None:
        raise AdapterError(
            f"{owner} refers to a source of kind {kind!r}, which drbot cannot reconcile."
        )
    return res


def _reconcile_source(
    kube: Kube, kind: str, name: str, namespace: str, owner: str, *, timeout: float, poll: float,
    hooks: Hooks,
) -> None:
    res = _source_resource(kind, owner)
    missing = NotFound(f"{owner} refers to {kind} {namespace}/{name}, which does not exist.")
    try:
        obj = kube.get_object(res, name, namespace)
    except NotFound:
        older = _OLDER_VERSIONS.get(kind)
        if older is None:
            raise missing from None
        res = Resource(res.group, older, res.plural, res.kind)
        try:
            obj = kube.get_object(res, name, namespace)
        except NotFound:
            raise missing from None
    if kind == "HelmRepository" and (obj.get("spec") or {}).get("type") == "oci":
        hooks.report(
            Progress(
                f"HelmRepository {namespace}/{name} is an OCI repository, which Flux does not "
                "reconcile; skipped",
                target=f"HelmRepository {namespace}/{name}",
                task="reconcile",
                status="skipped",
            )
        )
        return
    _refuse_if_suspended(obj, res)
    _request(kube, res, name, namespace, timeout=timeout, poll=poll, hooks=hooks)


def reconcile_kustomization(
    kube: Kube,
    name: str,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    with_source: bool = False,
    timeout: float = 300.0,
    poll: float = 2.0,
    hooks: Hooks | None = None,
) -> Kustomization:
    """Reconcile a Kustomization (its source first with ``with_source``) and wait for Ready.

    Raises Refused when it (or its source) is suspended, AdapterError with Ready's message when
    the reconcile fails, TimedOut at ``timeout`` (per object), Cancelled on request.
    """
    hooks = hooks or Hooks()
    obj = _get(kube, KUSTOMIZATIONS, name, namespace)
    _refuse_if_suspended(obj, KUSTOMIZATIONS)
    if with_source:
        ks = _to_kustomization(obj)
        _reconcile_source(
            kube, ks.source_kind, ks.source_name, ks.source_namespace,
            f"Kustomization {namespace}/{name}", timeout=timeout, poll=poll, hooks=hooks,
        )
    done = _request(kube, KUSTOMIZATIONS, name, namespace, timeout=timeout, poll=poll, hooks=hooks)
    return _to_kustomization(done)


def reconcile_helmrelease(
    kube: Kube,
    name: str,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    with_source: bool = False,
    force: bool = False,
    timeout: float = 300.0,
    poll: float = 2.0,
    hooks: Hooks | None = None,
) -> HelmRelease:
    """Reconcile a HelmRelease and wait for Ready, like ``flux reconcile hr [--force]``.

    ``force`` asks for a one-off Helm upgrade even when the release is in sync: the only way
    helm-controller re-creates a deleted object of a release whose drift detection is off.
    With ``with_source``: a ``chartRef`` target (HelmChart or OCIRepository) is reconciled first;
    otherwise the chart template's source and then the HelmChart ``<namespace>-<name>``.
    """
    hooks = hooks or Hooks()
    obj = _get(kube, HELMRELEASES, name, namespace)
    _refuse_if_suspended(obj, HELMRELEASES)
    if with_source:
        owner = f"HelmRelease {namespace}/{name}"
        spec = obj.get("spec") or {}
        wait = {"timeout": timeout, "poll": poll, "hooks": hooks}
        chart_ref = spec.get("chartRef") or {}
        if chart_ref:
            _reconcile_source(
                kube, str(chart_ref.get("kind", "")), str(chart_ref.get("name", "")),
                str(chart_ref.get("namespace") or namespace), owner, **wait,
            )
        else:
            source = ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or {}
            chart_ns = str(source.get("namespace") or namespace)
            _reconcile_source(
                kube, str(source.get("kind", "")), str(source.get("name", "")), chart_ns, owner,
                **wait,
            )
            _reconcile_source(kube, "HelmChart", f"{namespace}-{name}", chart_ns, owner, **wait)
    done = _request(kube, HELMRELEASES, name, namespace, timeout=timeout, poll=poll, hooks=hooks,
                    force=force)
    return _to_helmrelease(done)


# ---- suspend / resume --------------------------------------------------------------------


def _kind(kind: str) -> Resource:
    res = _KINDS.get(kind.lower())
    if res is None:
        raise ValueError(f"unknown Flux kind {kind!r}: use Kustomization or HelmRelease")
    return res


def _convert(res: Resource, obj: dict[str, Any]) -> Kustomization | HelmRelease:
    return _to_kustomization(obj) if res is KUSTOMIZATIONS else _to_helmrelease(obj)


def suspend(
    kube: Kube, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE
) -> Kustomization | HelmRelease:
    """Suspend a Kustomization or HelmRelease (merge-patch ``spec.suspend=true``)."""
    res = _kind(kind)
    _get(kube, res, name, namespace)
    return _convert(res, kube.patch_object(res, name, {"spec": {"suspend": True}}, namespace))


def resume(
    kube: Kube,
    kind: str,
    name: str,
    namespace: str = DEFAULT_NAMESPACE,
    timeout: float = 300.0,
    hooks: Hooks | None = None,
    *,
    poll: float = 2.0,
) -> Kustomization | HelmRelease:
    """Resume a Kustomization or HelmRelease and wait until it is reconciled and Ready.

    Besides ``spec.suspend=false`` a reconcile request token is written in the same patch, so
    the wait can tell the controller's new result from the one it had before the suspend.
    """
    res = _kind(kind)
    hooks = hooks or Hooks()
    _get(kube, res, name, namespace)
    done = _request(
        kube, res, name, namespace, timeout=timeout, poll=poll, hooks=hooks,
        extra={"spec": {"suspend": False}},
    )
    return _convert(res, done)

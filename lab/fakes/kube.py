"""The lab's Kubernetes API served alone for tests, plus helpers that seed objects into it.

``kube_emulator`` runs the lab's emulator (``lab.kube.LabKube``: kmock plus the API server's
admission, stamping, PUT, JSON patch, selectors, Namespace lifecycle and the Eviction API) on its
own lab loop, bound to 127.0.0.1, without the lab's world or controllers, and with every
resource drbot's adapters name registered (so empty lists are lists, not 404s).
``kube`` is an ``adapters.kubernetes.client.Kube`` bound to it through a kubeconfig file.

The seeding helpers speak plain HTTP to the emulator, so they are safe from any thread and can
be reused by end-to-end tests and the simulated lab.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from adapters.kubernetes.resources import Resource
from lab.servers import KubeServer, LabLoop, dead_port

# The revision the seeded Flux objects were applied at (StandaloneFlux reconciles to it too).
REVISION = "main@sha1:0123abcd"
# Older Flux versions of OCIRepository and Bucket, which drbot's adapters still read.
OLDER_FLUX_SOURCES = (("ocirepositories", "OCIRepository"), ("buckets", "Bucket"))


class StandaloneKube:
    """A running emulator: ``url``, the ``emulator`` (a LabKube), and JSON helpers over HTTP."""

    def __init__(self) -> None:
        self.url = ""
        self.emulator: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lab_loop: LabLoop | None = None
        self._server: KubeServer | None = None

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        from lab.kube import LabKube

        self._lab_loop = LabLoop()
        self.loop = self._lab_loop.loop
        self.emulator = LabKube(keep_requests=True)  # its tests ask kmock's DSL what came
        register_resources(self.emulator)
        self._server = KubeServer(self._lab_loop, self.emulator)
        self.url = self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        if self._lab_loop is not None:
            self._lab_loop.close()

    def on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the emulator's loop (to change reactions safely) and return its result."""
        assert self.loop is not None

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def inject(self, criteria: Any, *payload: Any) -> None:
        """Add a reaction, e.g. ``inject("list v1/nodes", 500)`` (kmock's DSL)."""

        def add() -> None:
            view = self.emulator[criteria]
            for item in payload:
                view = view << item

        self.on_loop(add)

    def requests(self, criteria: Any) -> list[Any]:
        """The requests the emulator received that match kmock ``criteria``."""
        return self.on_loop(lambda: list(self.emulator[criteria]))

    def sent(self, criteria: Any) -> list[Any]:
        """The JSON bodies clients sent in the requests matching ``criteria``, as sent (a
        request's ``data`` is what the emulator stored: stamped with uid, resourceVersion...)."""
        return [json.loads(r.body) if r.body else None for r in self.requests(criteria)]

    # ---- JSON over HTTP -------------------------------------------------------------

    def path(self, res: Resource, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
        if res.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{res.plural}"
        return base + (f"/{name}" if name else "")

    def http(self, method: str, path: str, body: Any = None, content_type: str = "") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type or "application/json"}
        req = urllib.request.Request(  # noqa: S310 (the emulator's own http URL)
            self.url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                text = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return json.loads(text) if text else None

    def create(self, res: Resource, body: dict[str, Any]) -> dict[str, Any]:
        namespace = body.get("metadata", {}).get("namespace")
        full = {"apiVersion": res.api_version, "kind": res.kind, **body}
        return self.http("POST", self.path(res, namespace), full)

    def get(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.http("GET", self.path(res, namespace, name))

    def list(self, res: Resource, namespace: str | None = None) -> list[dict[str, Any]]:
        return (self.http("GET", self.path(res, namespace)) or {}).get("items", [])

    def patch(
        self, res: Resource, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any] | None:
        return self.http("PATCH", self.path(res, namespace, name), patch,
                         "application/merge-patch+json")

    def delete(self, res: Resource, name: str, namespace: str | None = None) -> Any:
        return self.http("DELETE", self.path(res, namespace, name))


def register_resources(emulator: Any) -> None:
    """Register every resource drbot's adapters name that the lab's world does not serve."""
    for res in (*R.CORE, *R.CUSTOM):
        emulator.register(res.api_version, res.plural, res.kind, res.namespaced)
    for plural, kind in OLDER_FLUX_SOURCES:
        emulator.register("source.toolkit.fluxcd.io/v1beta2", plural, kind, True)


def dead_endpoint() -> str:
    """A 127.0.0.1 URL where connections are refused, for the rest of the test session."""
    return f"http://127.0.0.1:{dead_port()}"


def write_kubeconfig(path: Path, server_url: str) -> Path:
    """A kubeconfig for ``server_url`` with a bearer token (the emulator ignores it)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": {"server": server_url}}],
        "users": [{"name": "drbot", "user": {"token": "test-token"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "drbot"}}],
        "current-context": "lab",
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def kube_emulator() -> Iterator[StandaloneKube]:
    server = StandaloneKube()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kube(kube_emulator: StandaloneKube, tmp_path: Path) -> Iterator[Kube]:
    client = Kube(write_kubeconfig(tmp_path / "kubeconfig", kube_emulator.url))
    try:
        yield client
    finally:
        client.close()


# ---- background "controllers" -------------------------------------------------------------


class Reactor:
    """Runs ``step`` every ``interval`` seconds on a thread until stopped (a tiny controller)."""

    def __init__(self, step: Callable[[], None], interval: float = 0.05) -> None:
        self._step = step
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list[BaseException] = []

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._step()
            except Exception as exc:  # surfaced by stop()
                self.errors.append(exc)

    def __enter__(self) -> Reactor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        if self.errors:
            raise self.errors[0]


class Controller:
    """One of the lab's controllers (lab/controllers) run alone on the emulator's loop, every
    ``interval`` seconds, for the adapters' tests: the same code as the lab world's, so what
    the adapters are tested against is what the lab's runbooks meet. ``step`` names the
    controller's pass (``longhorn_backups``); ``knobs`` set its attributes (a test's faults).
    """

    def __init__(self, server: StandaloneKube, cls: type, step: str, interval: float = 0.05,
                 **knobs: Any) -> None:
        from lab.controllers.base import Timings
        from lab.world import WorldState

        self.server = server
        self.controller = cls(server.emulator, None, WorldState(), Timings(), {}, Path())
        for name, value in knobs.items():
            setattr(self.controller, name, value)
        self._step = getattr(self.controller, step)
        self._interval = interval
        self._stop = threading.Event()
        self._future: Any = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self._step()
            await asyncio.sleep(self._interval)

    def __enter__(self) -> Any:
        assert self.server.loop is not None
        self._future = asyncio.run_coroutine_threadsafe(self._run(), self.server.loop)
        return self.controller

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._future.result(10)  # re-raises what a pass raised


def longhorn_backups(server: StandaloneKube, **knobs: Any) -> Controller:
    """The lab's Longhorn taking snapshots and backups (lab/controllers/longhorn_backup.py)."""
    from lab.controllers.longhorn_backup import LonghornBackupController

    return Controller(server, LonghornBackupController, "longhorn_backups", **knobs)


# ---- seeding helpers ------------------------------------------------------------------------


def _ready_condition(ready: bool | None, reason: str, message: str) -> list[dict[str, Any]]:
    if ready is None:
        return []
    return [{"type": "Ready", "status": "True" if ready else "False", "reason": reason,
             "message": message, "observedGeneration": 1}]


def add_kustomization(
    server: StandaloneKube,
    name: str,
    namespace: str = "flux-system",
    *,
    suspended: bool = False,
    ready: bool | None = True,
    message: str = f"Applied revision: {REVISION}",
    source: tuple[str, str] = ("GitRepository", "flux-system"),
    source_namespace: str | None = None,
) -> dict[str, Any]:
    ref: dict[str, Any] = {"kind": source[0], "name": source[1]}
    if source_namespace:
        ref["namespace"] = source_namespace
    return server.create(R.KUSTOMIZATIONS, {
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {"interval": "10m", "path": f"./{name}", "prune": True, "sourceRef": ref,
                 "suspend": suspended},
        "status": {"observedGeneration": 1, "lastAppliedRevision": REVISION,
                   "conditions": _ready_condition(ready, "ReconciliationSucceeded"
                                                  if ready else "BuildFailed", message)},
    })


def add_helmrelease(
    server: StandaloneKube,
    name: str,
    namespace: str = "flux-system",
    *,
    suspended: bool = False,
    ready: bool | None = True,
    chart: str = "podinfo",
    source: tuple[str, str] = ("HelmRepository", "podinfo"),
    chart_ref: tuple[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"interval": "10m", "suspend": suspended}
    if chart_ref:
        spec["chartRef"] = {"kind": chart_ref[0], "name": chart_ref[1]}
    else:
        spec["chart"] = {"spec": {"chart": chart, "version": "6.x",
                                  "sourceRef": {"kind": source[0], "name": source[1]}}}
    return server.create(R.HELMRELEASES, {
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": spec,
        "status": {"observedGeneration": 1, "lastAttemptedRevision": "6.5.0",
                   "conditions": _ready_condition(ready, "InstallSucceeded", "Helm install ok")},
    })


def add_source(
    server: StandaloneKube,
    kind: str,
    name: str,
    namespace: str = "flux-system",
    *,
    suspended: bool = False,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    res = {r.kind: r for r in R.CUSTOM if r.group == "source.toolkit.fluxcd.io"}[kind]
    return server.create(res, {
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {"interval": "1m", "suspend": suspended, **(spec or {})},
        "status": {"observedGeneration": 1,
                   "conditions": _ready_condition(True, "Succeeded", "stored artifact")},
    })


def add_node(
    server: StandaloneKube,
    name: str,
    *,
    ready: bool = True,
    roles: tuple[str, ...] = (),
    etcd: bool = False,
    ip: str = "10.0.0.10",
    unschedulable: bool = False,
    finalizers: tuple[str, ...] = (),
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    for role in roles:
        labels[f"node-role.kubernetes.io/{role}"] = "true"
    if etcd:
        labels["node-role.kubernetes.io/etcd"] = "true"
    return server.create(R.NODES, {
        "metadata": {"name": name, "labels": labels, "finalizers": list(finalizers),
                     "annotations": dict(annotations or {})},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "Unknown",
                            "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                            "message": "kubelet is posting ready status" if ready
                            else "Kubelet stopped posting node status."}],
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
        },
    })


def set_node_ready(server: StandaloneKube, name: str, ready: bool) -> None:
    server.patch(R.NODES, name, {"status": {"conditions": [
        {"type": "Ready", "status": "True" if ready else "Unknown",
         "reason": "KubeletReady" if ready else "NodeStatusUnknown"}]}})


def add_pod(
    server: StandaloneKube,
    name: str,
    namespace: str,
    node: str,
    *,
    owner_kind: str = "ReplicaSet",
    mirror: bool = False,
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    pvc: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {}}
    if owner_kind:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner_kind,
                                    "name": f"{name}-owner", "uid": "u-1", "controller": True}]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}
    if pvc:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": pvc}}]
    return server.create(R.PODS, {"metadata": meta, "spec": spec, "status": {"phase": phase}})


def add_pdb(
    server: StandaloneKube, name: str, namespace: str, match_labels: dict[str, str], *,
    allowed: int = 0, healthy: int = 1,
) -> dict[str, Any]:
    """A PodDisruptionBudget over the pods with these labels, as the disruption controller
    leaves its status: ``allowed`` evictions, ``healthy`` pods needed and present."""
    return server.create(R.PODDISRUPTIONBUDGETS, {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minAvailable": healthy, "selector": {"matchLabels": match_labels}},
        "status": {"disruptionsAllowed": allowed, "desiredHealthy": healthy,
                   "currentHealthy": healthy, "expectedPods": healthy},
    })


def set_pdb_allowed(server: StandaloneKube, name: str, namespace: str, allowed: int) -> None:
    """The disruption controller's recount: ``allowed`` evictions now."""
    server.patch(R.PODDISRUPTIONBUDGETS, name, {"status": {"disruptionsAllowed": allowed}}, namespace)


def add_lh_volume(
    server: StandaloneKube,
    name: str,
    replicas: list[tuple[str, bool]],
    *,
    pvc: str = "",
    pvc_namespace: str = "",
    state: str = "attached",
    robustness: str = "healthy",
    size: str = "1073741824",
    node: str = "",
    last_backup: str = "",
    last_backup_at: str = "",
) -> dict[str, Any]:
    """A Longhorn Volume and one Replica per (nodeID, healthy) pair."""
    ns = R.LONGHORN_NAMESPACE
    volume = server.create(R.LH_VOLUMES, {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"numberOfReplicas": len(replicas), "size": size, "frontend": "blockdev"},
        "status": {"state": state, "robustness": robustness, "currentNodeID": node,
                   "lastBackup": last_backup, "lastBackupAt": last_backup_at,
                   "kubernetesStatus": {"pvcName": pvc, "namespace": pvc_namespace,
                                        "pvName": f"pv-{name}" if pvc else ""}},
    })
    for index, (node_id, healthy) in enumerate(replicas):
        add_lh_replica(server, f"{name}-r-{index}", name, node_id, healthy)
    return volume


def add_lh_replica(
    server: StandaloneKube, name: str, volume: str, node: str, healthy: bool
) -> dict[str, Any]:
    stamp = "2026-01-01T00:00:00Z"
    return server.create(R.LH_REPLICAS, {
        "metadata": {"name": name, "namespace": R.LONGHORN_NAMESPACE,
                     "labels": {"longhornvolume": volume}},
        "spec": {"nodeID": node, "volumeName": volume, "diskID": "disk-1",
                 "healthyAt": stamp if healthy else "", "failedAt": "" if healthy else stamp},
        "status": {"currentState": "running" if healthy else "error"},
    })


def add_lh_node(
    server: StandaloneKube, name: str, *, ready: bool = True, reason: str = "",
    allow_scheduling: bool = True,
) -> dict[str, Any]:
    return server.create(R.LH_NODES, {
        "metadata": {"name": name, "namespace": R.LONGHORN_NAMESPACE},
        "spec": {"allowScheduling": allow_scheduling},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                   "reason": reason}]},
    })


def set_lh_disk(server: StandaloneKube, node: str, *, maximum: int, available: int,
                scheduled: int = 0, reserved: int = 0, allow: bool = True) -> None:
    """Give a Longhorn node one disk, as longhorn-manager reports it in the node's status
    (diskStatus: storageMaximum, storageAvailable, storageScheduled)."""
    server.patch(R.LH_NODES, node, {
        "spec": {"disks": {"d1": {"allowScheduling": allow, "storageReserved": reserved}}},
        "status": {"diskStatus": {"d1": {"storageMaximum": maximum, "storageAvailable": available,
                                         "storageScheduled": scheduled}}}},
        R.LONGHORN_NAMESPACE)


def backup_url(backup: str, volume: str, target: str = "s3://backups@us-east-1/lh") -> str:
    return f"{target}?backup={backup}&volume={volume}"


def add_lh_backup(
    server: StandaloneKube,
    name: str,
    volume: str,
    *,
    state: str = "Completed",
    created: str = "2026-01-02T03:04:05Z",
    size: str = "1073741824",
    pvc: str = "",
    pvc_namespace: str = "",
    error: str = "",
    access_mode: str = "rwo",
    storage_class: str = "longhorn",
) -> dict[str, Any]:
    """A Backup as Longhorn records it: the spec labels it was taken with (the access-mode label
    its mutating webhook adds; KubernetesStatus when taken through Longhorn's API or a recurring
    job) copied into ``status.labels``; ``size`` is the volume's (the stored data is smaller).
    Its BackupVolume, with the PVC's storage class, is made too unless it exists."""
    labels = {"backup-volume": volume, "backup-target": "default"}
    spec_labels = {"longhorn.io/volume-access-mode": access_mode} if access_mode else {}
    if pvc:
        spec_labels["KubernetesStatus"] = json.dumps(
            {"pvcName": pvc, "namespace": pvc_namespace, "pvName": f"pv-{volume}"})
    if not any((bv.get("spec") or {}).get("volumeName", bv["metadata"]["name"]) == volume
               for bv in server.list(R.LH_BACKUPVOLUMES, R.LONGHORN_NAMESPACE)):
        add_lh_backup_volume(server, volume, last_backup=name, last_backup_at=created,
                             storage_class=storage_class)
    return server.create(R.LH_BACKUPS, {
        "metadata": {"name": name, "namespace": R.LONGHORN_NAMESPACE, "labels": labels},
        "spec": {"snapshotName": f"snap-{name}", "labels": spec_labels},
        "status": {"state": state, "backupCreatedAt": created, "snapshotCreatedAt": created,
                   "url": backup_url(name, volume) if state == "Completed" else "",
                   "volumeName": volume, "size": str(int(size) // 4), "error": error,
                   "volumeSize": size,
                   "labels": spec_labels if state == "Completed" else {},
                   "backupTargetName": "default"},
    })


def add_lh_backup_volume(
    server: StandaloneKube, volume: str, *, last_backup: str, last_backup_at: str,
    v18: bool = True, storage_class: str = "longhorn",
) -> dict[str, Any]:
    """A BackupVolume named as Longhorn v1.8+ names it (``<vol>-<hash>``) or as v1.7 does;
    one that exists is updated."""
    name = f"{volume}-5b2e8f0c" if v18 else volume
    spec = {"volumeName": volume, "backupTargetName": "default"} if v18 else {}
    status = {"lastBackupName": last_backup, "lastBackupAt": last_backup_at,
              "lastSyncedAt": last_backup_at, "storageClassName": storage_class}
    if server.get(R.LH_BACKUPVOLUMES, name, R.LONGHORN_NAMESPACE) is not None:
        return server.patch(R.LH_BACKUPVOLUMES, name, {"status": status}, R.LONGHORN_NAMESPACE)
    return server.create(R.LH_BACKUPVOLUMES, {
        "metadata": {"name": name, "namespace": R.LONGHORN_NAMESPACE,
                     "labels": {"backup-target": "default"} if v18 else {}},
        "spec": spec,
        "status": status,
    })


def add_lh_backup_target(
    server: StandaloneKube, *, available: bool = True, url: str = "s3://backups@us-east-1/lh",
    message: str = "",
) -> dict[str, Any]:
    conditions = [] if available else [
        {"type": "Unavailable", "status": "True", "reason": "Unavailable", "message": message}]
    return server.create(R.LH_BACKUPTARGETS, {
        "metadata": {"name": "default", "namespace": R.LONGHORN_NAMESPACE},
        "spec": {"backupTargetURL": url, "credentialSecret": "s3-secret", "pollInterval": "300s"},
        "status": {"available": available, "conditions": conditions,
                   "lastSyncedAt": "2026-01-02T00:00:00Z"},
    })


def add_cnpg_cluster(
    server: StandaloneKube,
    name: str,
    namespace: str = "db",
    *,
    ready: bool = True,
    last_backup: str = "2026-01-02T01:00:00Z",
    archiving: tuple[bool, str] = (True, ""),
    plugin_store: str = "",
) -> dict[str, Any]:
    conditions = [
        {"type": "Ready", "status": "True" if ready else "False", "reason": "ClusterIsReady"},
        {"type": "ContinuousArchiving", "status": "True" if archiving[0] else "False",
         "reason": "ContinuousArchivingSuccess" if archiving[0]
         else "ContinuousArchivingFailing", "message": archiving[1]},
    ]
    spec: dict[str, Any] = {"instances": 3}
    if plugin_store:
        spec["plugins"] = [{"name": "barman-cloud.cloudnative-pg.io", "isWALArchiver": True,
                            "parameters": {"barmanObjectName": plugin_store}}]
    return server.create(R.CNPG_CLUSTERS, {
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
        "status": {"phase": "Cluster in healthy state" if ready else "Failing",
                   "lastSuccessfulBackup": last_backup,
                   "firstRecoverabilityPoint": "2025-12-26T01:00:00Z",
                   "conditions": conditions},
    })


def add_objectstore(
    server: StandaloneKube, name: str, namespace: str, server_name: str,
    window: dict[str, str],
) -> dict[str, Any]:
    return server.create(R.BARMAN_OBJECTSTORES, {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"configuration": {"destinationPath": "s3://pg/"}},
        "status": {"serverRecoveryWindow": {server_name: window}},
    })


def add_cnpg_backup(
    server: StandaloneKube, name: str, cluster: str, namespace: str = "db", *,
    phase: str = "completed", started: str = "2026-01-02T01:00:00Z",
    stopped: str = "2026-01-02T01:05:00Z", error: str = "",
) -> dict[str, Any]:
    return server.create(R.CNPG_BACKUPS, {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"cluster": {"name": cluster}, "method": "barmanObjectStore"},
        "status": {"phase": phase, "startedAt": started, "stoppedAt": stopped, "error": error,
                   "backupId": "20260102T010000", "method": "barmanObjectStore"},
    })


def add_cnpg_scheduled_backup(
    server: StandaloneKube, name: str, cluster: str, namespace: str = "db", *,
    schedule: str = "0 0 1 * * *", suspended: bool = False,
) -> dict[str, Any]:
    return server.create(R.CNPG_SCHEDULEDBACKUPS, {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"cluster": {"name": cluster}, "schedule": schedule, "suspend": suspended},
        "status": {"lastScheduleTime": "2026-01-02T01:00:00Z",
                   "nextScheduleTime": "2026-01-03T01:00:00Z"},
    })


def add_etcd_snapshot(
    server: StandaloneKube, snapshot: str, node: str, *, s3: bool = False,
    created: str = "2026-01-02T00:00:00Z", ready: bool = True, size: str = "2048k",
    error: str = "",
) -> dict[str, Any]:
    storage = "s3" if s3 else node
    location = (f"s3://etcd-backups/k3s/{snapshot}" if s3
                else f"file:///var/lib/rancher/k3s/server/db/snapshots/{snapshot}")
    status: dict[str, Any] = {"creationTime": created, "readyToUse": ready, "size": size}
    if error:
        status["error"] = {"time": created, "message": error}
    return server.create(R.ETCD_SNAPSHOT_FILES, {
        "metadata": {"name": f"{'s3' if s3 else 'local'}-{snapshot}-a1b2c3",
                     "labels": {"etcd.k3s.cattle.io/snapshot-storage-node": storage}},
        "spec": {"snapshotName": snapshot, "nodeName": storage, "location": location,
                 **({"s3": {"bucket": "etcd-backups", "prefix": "k3s"}} if s3 else {})},
        "status": status,
    })

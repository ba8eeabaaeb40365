"""The lab's Kubernetes API: kmock's emulator with the parts of a real API server drbot relies on.

kmock keeps objects as plain JSON and applies every write before any reaction runs, so the
behaviour of a real API server that must happen *before* a write (admission webhooks, PUT with
resourceVersion, JSON patch, selectors, metadata stamping) is added here by subclassing, as kmock's
documentation suggests ("inherit and implement for your cases"). Evictions, which kmock does not
model at all, are served by an ordinary kmock reaction (`lab.eviction`).

The lab runs it with its world and controllers; tests run it alone (`lab.fakes.kube`), with
every resource drbot's adapters name registered (`register`).
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import rendering

from lab.eviction import evict
from lab.holds import Holds
from lab.kube_wire import (
    CONTROLLER_HEADER,
    attrs_patch,
    json_patch,
    merge_diff,
    now_iso,
    selected,
    status_body,
)

# pods/<name>/exec: the websocket subprotocols of the API server's exec (channel byte first)
EXEC_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/exec$")
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


_ATOMIC = (str, int, float, bool, type(None))


def json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), three times as fast as
    copy.deepcopy, which the controllers spent most of their CPU in: they copy every object
    they look at on every tick. Anything else is deep-copied as before."""
    kind = type(value)
    if kind is dict:
        return {key: json_copy(item) for key, item in value.items()}
    if kind is list:
        return [json_copy(item) for item in value]
    return value if kind in _ATOMIC else copy.deepcopy(value)


@attrs.frozen
class ExecResult:
    """What a command run through pods/exec did."""

    exit_code: int
    stdout: str
    stderr: str


# (namespace, pod, container, argv) -> its result, or None when the handler does not serve it
ExecHandler = Callable[[str, str, str, list[str]], "ExecResult | None"]

# An admission check: (request, current object or None) -> None, or (code, reason, message).
Admission = Callable[[rendering.Request, dict[str, Any] | None], "tuple[int, str, str] | None"]

NODES = kmock.resource("", "v1", "nodes")
PODS = kmock.resource("", "v1", "pods")

# (group/version, plural, kind, namespaced, short names)
RESOURCES: list[tuple[str, str, str, bool, tuple[str, ...]]] = [
    ("v1", "nodes", "Node", False, ("no",)),
    ("v1", "pods", "Pod", True, ("po",)),
    ("v1", "secrets", "Secret", True, ()),
    ("v1", "namespaces", "Namespace", False, ("ns",)),
    ("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",)),
    ("v1", "persistentvolumes", "PersistentVolume", False, ("pv",)),
    ("v1", "events", "Event", True, ("ev",)),
    ("apps/v1", "deployments", "Deployment", True, ("deploy",)),
    ("apps/v1", "statefulsets", "StatefulSet", True, ("sts",)),
    ("apps/v1", "daemonsets", "DaemonSet", True, ("ds",)),
    ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",)),
    ("kustomize.toolkit.fluxcd.io/v1", "kustomizations", "Kustomization", True, ("ks",)),
    ("source.toolkit.fluxcd.io/v1", "gitrepositories", "GitRepository", True, ("gitrepo",)),
    ("source.toolkit.fluxcd.io/v1", "helmrepositories", "HelmRepository", True, ("helmrepo",)),
    ("source.toolkit.fluxcd.io/v1", "helmcharts", "HelmChart", True, ("hc",)),
    ("helm.toolkit.fluxcd.io/v2", "helmreleases", "HelmRelease", True, ("hr",)),
    ("longhorn.io/v1beta2", "volumes", "Volume", True, ("lhv",)),
    ("longhorn.io/v1beta2", "replicas", "Replica", True, ("lhr",)),
    ("longhorn.io/v1beta2", "engines", "Engine", True, ("lhe",)),
    ("longhorn.io/v1beta2", "nodes", "Node", True, ("lhn",)),
    ("longhorn.io/v1beta2", "backups", "Backup", True, ("lhb",)),
    ("longhorn.io/v1beta2", "snapshots", "Snapshot", True, ("lhsnap",)),
    ("longhorn.io/v1beta2", "backupvolumes", "BackupVolume", True, ("lhbv",)),
    ("longhorn.io/v1beta2", "backuptargets", "BackupTarget", True, ("lhbt",)),
    ("longhorn.io/v1beta2", "recurringjobs", "RecurringJob", True, ("lhrj",)),
    ("longhorn.io/v1beta2", "settings", "Setting", True, ("lhs",)),
    ("postgresql.cnpg.io/v1", "clusters", "Cluster", True, ()),
    ("postgresql.cnpg.io/v1", "backups", "Backup", True, ()),
    ("postgresql.cnpg.io/v1", "scheduledbackups", "ScheduledBackup", True, ()),
    ("barmancloud.cnpg.io/v1", "objectstores", "ObjectStore", True, ()),
    ("k3s.cattle.io/v1", "etcdsnapshotfiles", "ETCDSnapshotFile", False, ()),
]
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
SUBRESOURCES = {"nodes": {"status"}, "pods": {"eviction", "status", "log", "exec"}}
NAMESPACES = kmock.resource("", "v1", "namespaces")
# kmock's path parser reads /api/v1/namespaces[/<name>] as a namespace prefix without a resource;
# such requests are parsed at this path and then put back (their logged URL stays the real one).
_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(/[^/]+)?$")
_NAMESPACES_AT = "/api/v1/namespaces/-/namespaces"


# --------------------------------------------------------------------------- emulator


@attrs.define(kw_only=True)
class LabKube(kmock.KubernetesEmulator):
    """kmock's emulator plus admission checks, metadata stamping, PUT, JSON patch, selectors."""

    admissions: list[Admission] = attrs.field(factory=list)
    holds: Holds = attrs.field(factory=Holds)
    # (namespace, pod) -> what its container printed, served at pods/<name>/log (lab kubelet)
    pod_logs: dict[tuple[str, str], str] = attrs.field(factory=dict)
    # (verb, group, resource[/subresource]) the lab's credentials may not do
    denied: set[tuple[str, str, str]] = attrs.field(factory=set)
    # who runs commands in pods (the lab's CNPG operator for its instances), and the exec
    # requests clients made: (method, path, query, User-Agent), as kmock logs its own
    exec_handlers: list[ExecHandler] = attrs.field(factory=list)
    exec_requests: list[tuple[str, str, dict[str, str], str]] = attrs.field(factory=list)
    _versions: itertools.count = attrs.field(factory=lambda: itertools.count(1000), init=False)
    # Clients' requests once answered (the controllers' own are not kept). kmock matches each
    # request against a reaction by filtering every request it still holds, so a long test made
    # the emulator's CPU time grow with the square of its requests: it holds only those in flight.
    answered: list[rendering.Request] = attrs.field(factory=list, init=False)
    # A short test that asks kmock's DSL which requests came (``emulator["get", ...]``) needs them
    # kept where the DSL looks: the tests' emulator on its own (lab/fakes/kube.py) keeps them.
    keep_requests: bool = False

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for group_version, plural, kind, namespaced, short in RESOURCES:
            self.register(group_version, plural, kind, namespaced, short)
        self[kmock.method.POST, kmock.subresource("eviction")] << functools.partial(evict, self)

    def register(self, group_version: str, plural: str, kind: str, namespaced: bool,
                 short: tuple[str, ...] = ()) -> None:
        """Serve a resource (as an installed CRD would): listing it when empty answers an
        empty list, not 404. One already registered is kept as it is."""
        key = f"{group_version}/{plural}"
        if key not in self.resources:
            self.resources[key] = kmock.ResourceInfo(
                kind=kind,
                namespaced=namespaced,
                verbs=VERBS,
                shortnames=set(short),
                subresources=SUBRESOURCES.get(plural, set()),
            )

    def current(
        self, resource: kmock.resource, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The live object, or None (read on the emulator's loop only)."""
        key = (resource, namespace, name)
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else json_copy(obj.raw)

    def live(self, resource: kmock.resource) -> list[dict[str, Any]]:
        """Every live object of a resource (read on the emulator's loop only). The controllers
        ask this some fifteen times a tick over every object of the cluster: the keys are
        compared as plain tuples, as kmock's resource equality does, minus its pattern match
        per key, which took most of their CPU."""
        want = (resource.group, resource.version, resource.plural)
        return [
            json_copy(obj.raw)
            for (res, _, _), obj in list(self.objects.items())
            if (res.group, res.version, res.plural) == want and not obj.deleted
        ]

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        exec_at = EXEC_PATH.match(raw_request.path)
        if exec_at:
            return await self._exec(raw_request, exec_at[1], exec_at[2])
        found = _NAMESPACE_PATH.match(raw_request.path)
        if found:
            raw_request = raw_request.clone(
                rel_url=raw_request.rel_url.with_path(_NAMESPACES_AT + (found.group(1) or "")))
        return await super().__call__(raw_request)

    def requests_made(self) -> list[rendering.Request]:
        """Every client request, in the order they came (answered first, then those in flight)."""
        return [*self.answered, *(r for r in self._requests if CONTROLLER_HEADER not in r.headers)]

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        try:
            return await self._answer(request)
        finally:
            if not self.keep_requests:
                self._requests[:] = [r for r in self._requests if r is not request]
                if CONTROLLER_HEADER not in request.headers:
                    self.answered.append(request)

    async def _answer(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.url.path.startswith(_NAMESPACES_AT):
            self._namespace_request(request)
        if request.resource == PODS and request.subresource == "log":
            return self._pod_log(request)
        if request.url.path == SSAR_PATH and request.method == kmock.method.POST:
            return self._access_review(request)
        if request.resource is None or request.resource.plural is None:
            return await super()._handle(request)
        client = CONTROLLER_HEADER not in request.headers
        method = str(getattr(request.method, "value", request.method))
        if client:
            await self.holds.pause(method, request.url.path, after=False)
        try:
            self._prepare(request)
        except _Refused as refused:
            return aiohttp.web.json_response(refused.body, status=refused.body["code"])
        response = await super()._handle(request)
        if request.action == kmock.action.LIST and response.status == 200:
            response = self._filter_list(request, response)
        elif request.action == kmock.action.CREATE and response.status == 200:
            response.set_status(201)
        if client:
            await self.holds.pause(method, request.url.path, after=True)
        return response

    def _namespace_request(self, request: rendering.Request) -> None:
        """Put a Namespaces request back as the API server reads it: cluster-scoped, at its real
        URL. A client's DELETE only starts the deletion, as the API server does for a namespace
        (its spec finalizer ``kubernetes`` keeps it, phase Terminating); the lab's namespace
        controller empties it and then removes it (kubernetes pkg/registry/core/namespace/
        storage/storage.go Delete; pkg/controller/namespace/deletion). The API server also sets
        deletionTimestamp; the lab leaves it out, as kmock garbage-collects at once an object
        that has one and no metadata finalizers."""
        name = request.url.path.removeprefix(_NAMESPACES_AT).strip("/") or None
        object.__setattr__(request, "namespace", None)
        object.__setattr__(request, "url", request.url.with_path(
            "/api/v1/namespaces" + (f"/{name}" if name else "")))
        if request.action == kmock.action.DELETE and name and \
                CONTROLLER_HEADER not in request.headers and self.current(NAMESPACES, None, name):
            object.__setattr__(request, "action", kmock.action.UPDATE)
            object.__setattr__(request, "data", {"status": {"phase": "Terminating"}})

    async def _exec(self, raw: aiohttp.web.BaseRequest, ns: str, name: str
                    ) -> aiohttp.web.StreamResponse:
        """pods/<name>/exec as the API server serves it to a websocket client: the query names
        the command (one ``command`` per argument), the container and the streams; the
        connection is upgraded with a ``v5``/``v4.channel.k8s.io`` subprotocol; every message's
        first byte is its channel (1 stdout, 2 stderr, 3 the status); the status is a
        meta/v1 Status, Success or Failure with reason NonZeroExitCode and the exit code as
        the message of a cause of reason ExitCode (kubernetes staging/src/k8s.io/apiserver
        pkg/util/wsstream conn.go; kubelet pkg/cri/streaming/remotecommand websocket.go and
        exec.go). kmock has no exec (nor websockets), so it is served here, before kmock.
        A pod no handler serves answers as a container without that command would."""
        self.exec_requests.append((raw.method, raw.path, dict(raw.query),
                                   raw.headers.get("User-Agent", "")))
        pod = self.current(PODS, ns, name)
        if pod is None:
            return aiohttp.web.json_response(
                status_body(404, "NotFound", f'pods "{name}" not found'), status=404)
        phase = (pod.get("status") or {}).get("phase")
        if phase != "Running":
            return aiohttp.web.json_response(status_body(
                400, "BadRequest", f"pod {name} is not running (phase {phase or 'Pending'})"),
                status=400)
        argv = raw.query.getall("command", [])
        container = raw.query.get("container", "")
        result = None
        for handler in self.exec_handlers:
            result = handler(ns, name, container, list(argv))
            if result is not None:
                break
        ws = aiohttp.web.WebSocketResponse(protocols=EXEC_PROTOCOLS)
        await ws.prepare(raw)
        if result is None:
            status: dict[str, Any] = status_body(
                500, "InternalError", f"failed to exec in container: {argv[:1]} not found")
        else:
            if result.stdout and raw.query.get("stdout") in ("true", "1"):
                await ws.send_bytes(b"\x01" + result.stdout.encode())
            if result.stderr and raw.query.get("stderr") in ("true", "1"):
                await ws.send_bytes(b"\x02" + result.stderr.encode())
            status = {"metadata": {}, "status": "Success"} if result.exit_code == 0 else {
                "metadata": {}, "status": "Failure",
                "message": f"command terminated with non-zero exit code: exit status "
                           f"{result.exit_code}",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode",
                                        "message": str(result.exit_code)}]}}
        await ws.send_bytes(b"\x03" + json.dumps(status).encode())
        await ws.close()
        return ws

    def _pod_log(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """GET pods/<name>/log: what the container printed, as plain text; 400 while it has
        not run yet, with the kubelet's wording (kubernetes pkg/kubelet/kubelet_pods.go
        validateContainerLogStatus)."""
        ns, name = request.namespace or "", request.name or ""
        pod = self.current(PODS, ns, name)
        if pod is None:
            return aiohttp.web.json_response(
                status_body(404, "NotFound", f'pods "{name}" not found'), status=404)
        if (ns, name) not in self.pod_logs:
            containers = (pod.get("spec") or {}).get("containers") or [{}]
            container = request.params.get("container") or containers[0].get("name", "")
            return aiohttp.web.json_response(status_body(
                400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to '
                "start: ContainerCreating"), status=400)
        return aiohttp.web.Response(text=self.pod_logs[(ns, name)], content_type="text/plain")

    def _access_review(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """SelfSubjectAccessReview, as the API server answers it: the review comes back with
        ``status`` set by the authorizer and is not stored (kubernetes
        pkg/registry/authorization/selfsubjectaccessreview/rest.go; 201 Created). The lab's
        credentials are the K3s admin's, allowed everything (cluster-admin) except what a test
        took away with ``denied``; RBAC only allows or says nothing, so a refusal has
        ``allowed: false`` and no ``denied`` (plugin/pkg/auth/authorizer/rbac/rbac.go)."""
        body = request.data if isinstance(request.data, dict) else {}
        attrs_ = (body.get("spec") or {}).get("resourceAttributes") or {}
        resource = str(attrs_.get("resource", ""))
        if attrs_.get("subresource"):
            resource += "/" + str(attrs_["subresource"])
        key = (str(attrs_.get("verb", "")), str(attrs_.get("group", "")), resource)
        allowed = key not in self.denied
        status: dict[str, Any] = {"allowed": allowed}
        if allowed:
            status["reason"] = 'RBAC: allowed by ClusterRoleBinding "cluster-admin"'
        answer = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "metadata": {"creationTimestamp": None}, "spec": body.get("spec") or {},
                  "status": status}
        return aiohttp.web.json_response(answer, status=201)

    # The emulator keeps requests in memory for assertions; that is the lab's request log.

    def _prepare(self, request: rendering.Request) -> None:
        resource, ns, name = request.resource, request.namespace, request.name
        if request.method == kmock.method.PUT and name is not None:
            self._put_as_patch(request)
        elif request.action == kmock.action.UPDATE and isinstance(request.data, list):
            current = self.current(resource, ns, name) if name else None
            if current is None:
                raise _Refused(
                    status_body(404, "NotFound", f'{resource.plural} "{name}" not found')
                )
            try:
                patched = json_patch(current, request.data)
            except ValueError as exc:
                raise _Refused(
                    status_body(
                        422,
                        "Invalid",
                        f"the server rejected our request due to an error in our request: {exc}",
                    )
                ) from exc
            object.__setattr__(request, "data", merge_diff(current, patched))
        current = self.current(resource, ns, name) if name else None
        if request.action == kmock.action.CREATE and ns:
            home = self.current(NAMESPACES, None, ns)
            if home is not None and (home.get("status") or {}).get("phase") == "Terminating":
                # kubernetes plugin/pkg/admission/namespace/lifecycle/admission.go
                raise _Refused(status_body(403, "Forbidden", f"{resource.plural} is forbidden: "
                                           f"unable to create new content in namespace {ns} "
                                           "because it is being terminated"))
        for admit in self.admissions:
            refusal = admit(request, current)
            if refusal:
                code, reason, message = refusal
                raise _Refused(status_body(code, reason, message))
        self._stamp(request, current)

    def _put_as_patch(self, request: rendering.Request) -> None:
        current = self.current(request.resource, request.namespace, request.name or "")
        if current is None:
            raise _Refused(
                status_body(
                    404, "NotFound", f'{request.resource.plural} "{request.name}" not found'
                )
            )
        new = request.data if isinstance(request.data, dict) else {}
        sent = str(new.get("metadata", {}).get("resourceVersion") or "")
        if sent and sent != str(current["metadata"].get("resourceVersion")):
            raise _Refused(
                status_body(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {request.resource.plural} "
                    f'"{request.name}": the object has been modified; please apply '
                    "your changes to the latest version and try again",
                )
            )
        object.__setattr__(request, "data", merge_diff(current, new))
        object.__setattr__(request, "action", kmock.action.UPDATE)

    def _stamp(self, request: rendering.Request, current: dict[str, Any] | None) -> None:
        """uid, creationTimestamp, resourceVersion and generation, as the API server sets them."""
        data = request.data
        if not isinstance(data, dict):
            return
        if request.action == kmock.action.CREATE:
            meta = data.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_iso())
            meta.setdefault("generation", 1)
            if request.namespace and "namespace" not in meta:
                meta["namespace"] = request.namespace
            meta["resourceVersion"] = str(next(self._versions))
            if request.resource == NAMESPACES:
                data.setdefault("spec", {"finalizers": ["kubernetes"]})
                data["status"] = {"phase": "Active"}
        elif request.action == kmock.action.UPDATE and current is not None:
            meta = data.setdefault("metadata", {})
            if isinstance(meta, dict):
                meta["resourceVersion"] = str(next(self._versions))
                for fixed in ("uid", "creationTimestamp", "name", "namespace"):
                    meta.pop(fixed, None)
                if "spec" in data and request.subresource != "status":
                    new_spec = attrs_patch(current.get("spec") or {}, data["spec"])
                    if new_spec != (current.get("spec") or {}):
                        meta["generation"] = int(current["metadata"].get("generation") or 1) + 1

    def _filter_list(
        self, request: rendering.Request, response: aiohttp.web.StreamResponse
    ) -> aiohttp.web.StreamResponse:
        labels = request.params.get("labelSelector")
        fields = request.params.get("fieldSelector")
        body = getattr(response, "body", None)
        if not (labels or fields) or not isinstance(body, bytes | bytearray):
            return response
        payload = json.loads(body)
        payload["items"] = [
            item for item in payload.get("items", []) if selected(item, labels, fields)
        ]
        return aiohttp.web.json_response(payload)


class _Refused(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.body = body

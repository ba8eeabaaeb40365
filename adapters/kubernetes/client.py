"""The Kubernetes API connection: kubeconfig, endpoint failover, error translation.

``Kube`` is cheap to build: nothing is read or imported until the first call. Every call goes
through ``Kube.call``, which tries the configured API endpoints in turn (one dead K3s server must
not blind drbot), remembers the last one that answered, and turns the client's exceptions into
the errors of ``adapters.errors``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from adapters.errors import AdapterError, Conflict, NotFound, Unreachable
from adapters.kubernetes.resources import Resource

T = TypeVar("T")

# (connect, read) seconds for one request; a dead server must fail fast so the next is tried.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

_VERBS = {
    "list": "list",
    "read": "get",
    "create": "create",
    "patch": "patch",
    "replace": "update",
    "delete": "delete",
    "connect": "create",
}


USER_AGENT = "drbot (adapters.kubernetes)"

def _k8s() -> Any:
    """Import the kubernetes client on first use (it takes a while to import)."""
    import kubernetes

    return kubernetes


def preload() -> None:
    """Import the client and the API classes `Kube` hands out. A worker calls this once before
    it forks a work horse per job: each horse then inherits them instead of importing them
    again (near a second of CPU per job, CoreV1Api's module alone half of it)."""
    client = _k8s().client
    for name in ("ApiClient", "Configuration", "ApiException", "CoreV1Api", "CustomObjectsApi",
                 "PolicyV1Api", "AuthorizationV1Api"):
        getattr(client, name)


def _verb_of(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", "")
    return _VERBS.get(name.split("_", 1)[0], name or "this call")


def _status_message(exc: Any) -> tuple[str, list[str]]:
    """The server's Status message and the messages of its causes, from an ApiException."""
    body = getattr(exc, "body", None)
    try:
        status = json.loads(body) if body else {}
    except (TypeError, ValueError):
        status = {}
    if not isinstance(status, dict):
        status = {}
    message = str(status.get("message") or exc.reason or "").strip()
    details = status.get("details") if isinstance(status.get("details"), dict) else {}
    causes = [
        str(cause.get("message"))
        for cause in (details or {}).get("causes") or []
        if isinstance(cause, dict) and cause.get("message")
    ]
    return message, causes


class Kube:
    """A connection to one Kubernetes cluster, through one or more API endpoints.

    ``kubeconfig`` is the file to read (None: in-cluster service account if present, else
    ``~/.kube/config``); ``endpoints`` override the kubeconfig's server URL and are tried in
    order on connection errors; ``ca_file`` overrides the CA bundle (TLS is always verified).
    """

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str] | None = None,
        endpoints: Sequence[str] = (),
        *,
        ca_file: str | os.PathLike[str] | None = None,
        context: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.kubeconfig = os.fspath(kubeconfig) if kubeconfig is not None else None
        self._wanted_endpoints = [e.rstrip("/") for e in endpoints if e]
        self.ca_file = os.fspath(ca_file) if ca_file is not None else None
        self.context = context
        self.timeout = timeout
        self._endpoints: list[str] = []
        self._clients: list[Any] = []
        self._apis: dict[tuple[type, int], Any] = {}
        self._active = 0

    # ---- connection setup -------------------------------------------------------------

    def _base_configuration(self) -> Any:
        k8s = _k8s()
        cfg = k8s.client.Configuration()
        where = self.kubeconfig or "~/.kube/config"
        try:
            if self.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                where = "the in-cluster service account"
                k8s.config.load_incluster_config(client_configuration=cfg)
            else:
                k8s.config.load_kube_config(
                    config_file=self.kubeconfig,
                    context=self.context,
                    client_configuration=cfg,
                    persist_config=False,
                )
        except Exception as exc:  # the loader raises ConfigException, OSError, yaml errors...
            raise AdapterError(
                f"Cannot load the Kubernetes credentials from {where}: {exc}. "
                "Check the kubeconfig path (and context) in drbot's inventory."
            ) from None
        if self.ca_file:
            cfg.ssl_ca_cert = self.ca_file
        cfg.verify_ssl = True
        # One quick retry per endpoint; failover to the next endpoint does the rest.
        cfg.retries = 1
        # Read what the server sends even when a field the schema calls required is missing.
        cfg.client_side_validation = False
        return cfg

    def _load(self) -> None:
        if self._clients:
            return
        k8s = _k8s()
        base = self._base_configuration()
        endpoints = self._wanted_endpoints or [str(base.host).rstrip("/")]
        clients = []
        for url in endpoints:
            cfg = copy.deepcopy(base)
            cfg.host = url
            cfg.refresh_api_key_hook = self._pinned_refresh(base.refresh_api_key_hook, url)
            client = k8s.client.ApiClient(configuration=cfg)
            client.user_agent = USER_AGENT  # audit logs (and RBAC checks) can tell drbot apart
            clients.append(client)
        self._endpoints = endpoints
        self._clients = clients

    def _pinned_refresh(
        self, hook: Callable[[Any], None] | None, url: str
    ) -> Callable[[Any], None] | None:
        """The kubeconfig loader's token refresh hook, minus its reset of host and CA file.

        The loader re-applies the kubeconfig (server URL included) whenever it reads the token;
        the endpoint and CA file chosen here must survive that.
        """
        if hook is None:
            return None
        ca_file = self.ca_file

        def refresh(cfg: Any) -> None:
            hook(cfg)
            cfg.refresh_api_key_hook = refresh  # the loader re-installs its own hook
            cfg.host = url
            if ca_file:
                cfg.ssl_ca_cert = ca_file

        return refresh

    @property
    def endpoints(self) -> list[str]:
        """The API endpoints, in the order they are tried."""
        self._load()
        return list(self._endpoints)

    @property
    def endpoint(self) -> str:
        """The endpoint that answered last (the first one before any call)."""
        self._load()
        return self._endpoints[self._active]

    def _api(self, cls: type, index: int) -> Any:
        key = (cls, index)
        if key not in self._apis:
            self._apis[key] = cls(self._clients[index])
        return self._apis[key]

    @property
    def core(self) -> Any:
        """CoreV1Api bound to the endpoint in use (it also serves policy/v1 evictions)."""
        self._load()
        return self._api(_k8s().client.CoreV1Api, self._active)

    @property
    def custom(self) -> Any:
        """CustomObjectsApi bound to the endpoint in use."""
        self._load()
        return self._api(_k8s().client.CustomObjectsApi, self._active)

    @property
    def disruption_budgets(self) -> Any:
        """PolicyV1Api (PodDisruptionBudgets) bound to the endpoint in use. Not named after its
        API group: in drbot "policy" is who may run what (bot/config/policy.py)."""
        self._load()
        return self._api(_k8s().client.PolicyV1Api, self._active)

    @property
    def authorization(self) -> Any:
        """AuthorizationV1Api (SelfSubjectAccessReview) bound to the endpoint in use."""
        self._load()
        return self._api(_k8s().client.AuthorizationV1Api, self._active)

    def close(self) -> None:
        """Close the connection pools."""
        for api_client in self._clients:
            api_client.close()
        self._clients = []
        self._apis = {}

    # ---- calls -------------------------------------------------------------------------

    def _rebind(self, fn: Callable[..., T], index: int) -> Callable[..., T]:
        """The same API method, bound to the client of endpoint ``index``."""
        owner = getattr(fn, "__self__", None)
        if owner is None or not hasattr(owner, "api_client"):
            return fn
        return getattr(self._api(type(owner), index), fn.__name__)

    def call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run one API call, trying each endpoint in turn on connection errors.

        ``fn`` is normally a method of ``core``/``custom``/``policy``; it is re-bound to each
        endpoint's client in turn. Errors come out as ``adapters.errors`` types.
        """
        self._load()
        k8s = _k8s()
        import urllib3

        is_api_method = hasattr(getattr(fn, "__self__", None), "api_client")
        if is_api_method and "_request_timeout" not in kw:
            kw["_request_timeout"] = self.timeout
        order = [self._active] + [i for i in range(len(self._clients)) if i != self._active]
        failures: list[str] = []
        for index in order:
            bound = self._rebind(fn, index)
            url = self._endpoints[index]
            try:
                result = bound(*args, **kw)
            except k8s.client.ApiException as exc:
                if exc.status in (0, None):  # TLS failure or a request that never got an answer
                    failures.append(f"{url} ({_short(exc.reason)})")
                    continue
                raise self._translate(exc, fn, url) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                failures.append(f"{url} ({_connection_reason(exc)})")
                continue
            self._active = index
            return result
        raise Unreachable(
            "Cannot reach the Kubernetes API at "
            + ", ".join(failures)
            + ". Check that a K3s server is up and that the API endpoints (and CA file) in "
            "drbot's inventory are right."
        )

    def _translate(self, exc: Any, fn: Callable[..., Any], url: str) -> AdapterError:
        status = int(exc.status)
        message, causes = _status_message(exc)
        if causes:
            message = f"{message} ({'; '.join(causes)})"
        if status == 404:
            return NotFound(message or f"not found at {url}")
        if status in (409, 429):
            return Conflict(message or f"conflict ({status}) at {url}")
        if status == 401:
            return AdapterError(
                f"The Kubernetes API at {url} rejected drbot's credentials (401 Unauthorized). "
                "The kubeconfig's token or client certificate is wrong or expired: "
                "give drbot a fresh kubeconfig."
            )
        if status == 403:
            return AdapterError(
                f"The Kubernetes API at {url} forbids this: {message}. Grant drbot's account "
                f"the RBAC verb '{_verb_of(fn)}' on that resource."
            )
        error = AdapterError(
            f"The Kubernetes API at {url} answered {status} {exc.reason or ''}".rstrip()
            + (f": {message}" if message else "")
            + (". Try again; check the API server's logs if it persists." if status >= 500 else ".")
        )
        if status >= 500:
            error.temporary = True
        return error

    # ---- custom objects (plain dicts) -------------------------------------------------

    def get_object(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Read one custom object of ``res`` as a plain dict."""
        if res.namespaced:
            return self.call(
                self.custom.get_namespaced_custom_object,
                res.group, res.version, _ns(res, namespace), res.plural, name,
            )
        return self.call(
            self.custom.get_cluster_custom_object, res.group, res.version, res.plural, name
        )

    def list_objects(self, res: Resource, namespace: str | None = None) -> list[dict[str, Any]]:
        """List objects of ``res``: in ``namespace``, or in every namespace when it is None."""
        if res.namespaced and namespace:
            result = self.call(
                self.custom.list_namespaced_custom_object,
                res.group, res.version, namespace, res.plural,
            )
        else:
            result = self.call(
                self.custom.list_cluster_custom_object, res.group, res.version, res.plural
            )
        items = [item for item in (result or {}).get("items") or [] if isinstance(item, dict)]
        if res.namespaced and namespace:  # applied again here: not every server filters
            items = [i for i in items if i.get("metadata", {}).get("namespace") == namespace]
        return items

    def create_object(
        self, res: Resource, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """Create one object of ``res`` from ``body`` (apiVersion/kind are filled in)."""
        body = {"apiVersion": res.api_version, "kind": res.kind, **body}
        ns: str | None = None
        if res.namespaced:
            ns = _ns(res, namespace or body.get("metadata", {}).get("namespace"))
            created = self.call(
                self.custom.create_namespaced_custom_object,
                res.group, res.version, ns, res.plural, body,
            )
        else:
            created = self.call(
                self.custom.create_cluster_custom_object, res.group, res.version, res.plural, body
            )
        name = body.get("metadata", {}).get("name")
        if not created and name:  # the client drops a create answered 200 instead of 201
            created = self.get_object(res, name, ns)
        return created

    def patch_object(
        self, res: Resource, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """Merge-patch one object of ``res``."""
        if res.namespaced:
            return self.call(
                self.custom.patch_namespaced_custom_object,
                res.group, res.version, _ns(res, namespace), res.plural, name, patch,
            )
        return self.call(
            self.custom.patch_cluster_custom_object, res.group, res.version, res.plural, name, patch
        )

    def delete_object(self, res: Resource, name: str, namespace: str | None = None) -> None:
        """Delete one object of ``res`` (finalizers may keep it a while)."""
        if res.namespaced:
            self.call(
                self.custom.delete_namespaced_custom_object,
                res.group, res.version, _ns(res, namespace), res.plural, name,
            )
        else:
            self.call(
                self.custom.delete_cluster_custom_object, res.group, res.version, res.plural, name
            )


def _ns(res: Resource, namespace: str | None) -> str:
    if not namespace:
        raise ValueError(f"{res.kind} is namespaced: a namespace is needed")
    return namespace


def _short(text: object) -> str:
    first = str(text or "no answer").strip().splitlines()
    return first[0][:200] if first else "no answer"


def _connection_reason(exc: BaseException) -> str:
    """A one-line reason for a connection failure (urllib3 nests the cause in ``reason``)."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    lowered = text.lower()
    if "certificate" in lowered or "ssl" in lowered:
        return "TLS verification failed: " + _short(text)
    if "refused" in lowered:
        return "connection refused"
    if "timed out" in lowered or "timeout" in lowered:
        return "timed out"
    return _short(text)

"""A CloudNativePG restore drill inside the cluster: a single-instance recovery Cluster in the
drill namespace, bootstrapped from the source cluster's object store, and SQL run in its pod.

The recovery Cluster follows CNPG's API (cloudnative-pg api/v1/cluster_types.go):
``spec.bootstrap.recovery.source`` names an entry of ``spec.externalClusters``, which carries
either ``barmanObjectStore`` (the in-tree BarmanObjectStoreConfiguration) or ``plugin`` (a
PluginConfiguration: the Barman Cloud plugin, ``parameters.barmanObjectName`` naming an
ObjectStore of ``barmancloud.cnpg.io/v1`` in the Cluster's own namespace). The folder read is
``<destinationPath>/<serverName>/`` where serverName defaults to the external cluster's name
(ExternalCluster.GetServerName), so the drill sets it to the source's server name explicitly.

The drill Cluster archives nowhere: it gets no ``spec.backup`` and no ``spec.plugins`` (the
source's are never copied), so no WAL of the throwaway cluster can land in the source's archive.
A Cluster reads Secrets of its own namespace only, and drbot does not read the source's Secrets
(its ClusterRole cannot: reading every Secret is not a drill's business). So the store's
credential selectors are pointed at one Secret drbot creates in the drill namespace from its own
read-only store credentials (``backups.cnpg_store``, the key /dr verify reads with); its content
passes through the API and is never returned or logged, and it goes with the namespace.

Ready: the condition ``Ready`` of ``status.conditions`` (ConditionClusterReady) with status True;
while recovering, ``status.phase`` is "Setting up primary" (PhaseFirstPrimary) and CNPG's
recovery job runs barman-cloud-restore. The instance pod is ``<cluster>-1``; its container
``postgres`` has ``PGHOST`` set to the instance's socket directory (pkg/specs, the env of the
instance container), so ``psql`` there reaches the server without a password (peer auth as the
postgres user).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from adapters.errors import AdapterError, Conflict, NotFound
from adapters.kubernetes.client import Kube
from adapters.kubernetes.cnpg import BARMAN_PLUGIN
from adapters.kubernetes.resources import BARMAN_OBJECTSTORES, CNPG_CLUSTERS

SOURCE = "drill-source"  # the externalClusters entry the recovery reads
CONTAINER = "postgres"
ERROR_CHANNEL = 3  # the exec API's status channel
PHASE_HEALTHY = "Cluster in healthy state"  # PhaseHealthy
PHASE_UNRECOVERABLE = "Cluster is in an unrecoverable state, needs manual intervention"


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNITS = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3,
          "M": 10**6, "G": 10**9, "T": 10**12}


def quantity(text: str) -> int:
    """Bytes of a Kubernetes quantity such as ``8Gi`` (0 when it is not one this reads)."""
    found = _QUANTITY.match(str(text).strip())
    return int(float(found[1]) * _UNITS[found[2]]) if found else 0


@dataclass(frozen=True)
class RecoveryPlan:
    """What the drill creates: the Cluster body and, for the Barman Cloud plugin, the copy of
    the ObjectStore it reads (the credentials Secret besides, see ``create``)."""

    cluster: dict[str, Any]
    object_store: dict[str, Any] | None
    server_name: str
    store: str  # what the recovery reads, for the report: "ObjectStore x" or the destination

    @property
    def storage(self) -> tuple[int, str]:
        """(bytes, storage class) of the instance's volume, as the source asks for it."""
        spec = self.cluster["spec"].get("storage") or {}
        return quantity(str(spec.get("size") or "")), str(spec.get("storageClass") or "")


CREDENTIALS = "drbot-drill-store"  # the Secret drbot creates in the drill namespace
ACCESS_KEY, SECRET_KEY, REGION, CA = "ACCESS_KEY_ID", "ACCESS_SECRET_KEY", "REGION", "ca.crt"


def with_drill_credentials(config: dict[str, Any], has_ca: bool) -> dict[str, Any]:
    """The store configuration with its credentials (and CA) read from the drill's own Secret.
    Only S3 stores: Azure and Google credentials are refused, as is an endpoint CA when drbot
    has none to give (``has_ca``)."""
    if config.get("azureCredentials") or config.get("googleCredentials"):
        raise AdapterError("only S3 object stores can be drilled (this one uses Azure or Google "
                           "credentials)")
    out = copy.deepcopy(config)
    out["s3Credentials"] = {"accessKeyId": {"name": CREDENTIALS, "key": ACCESS_KEY},
                            "secretAccessKey": {"name": CREDENTIALS, "key": SECRET_KEY},
                            "region": {"name": CREDENTIALS, "key": REGION}}
    if out.get("endpointCA"):
        if not has_ca:
            raise AdapterError("its store names an endpoint CA: set backups.cnpg_store.ca_file "
                               "so the drill can give the recovery Cluster the same CA")
        out["endpointCA"] = {"name": CREDENTIALS, "key": CA}
    return out


def plugin_store(source: dict[str, Any]) -> str:
    """The ObjectStore the source archives to through the Barman Cloud plugin ("" without)."""
    for plugin in (source.get("spec") or {}).get("plugins") or []:
        if isinstance(plugin, dict) and plugin.get("name") == BARMAN_PLUGIN:
            return str((plugin.get("parameters") or {}).get("barmanObjectName") or "")
    return ""


def _base_cluster(name: str, namespace: str, source: dict[str, Any], image: str
                  ) -> dict[str, Any]:
    spec = source.get("spec") or {}
    body: dict[str, Any] = {
        "apiVersion": CNPG_CLUSTERS.api_version, "kind": CNPG_CLUSTERS.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "instances": 1,
            "storage": copy.deepcopy(spec.get("storage") or {"size": "1Gi"}),
            "bootstrap": {"recovery": {"source": SOURCE}},
        },
    }
    image = image or str(spec.get("imageName") or "")
    if image:
        body["spec"]["imageName"] = image
    return body


def plan(source: dict[str, Any], *, name: str, namespace: str, server_name: str,
         object_store: dict[str, Any] | None, image: str = "", has_ca: bool = False
         ) -> RecoveryPlan:
    """The recovery Cluster for ``source`` (its object as read), in ``namespace``.

    With ``object_store`` (as read: the read-only one the inventory names, else the one the
    source's plugin archives to), the recovery goes through the Barman Cloud plugin and a copy
    of that ObjectStore's configuration; else through the source's in-tree
    ``barmanObjectStore``.
    Raises AdapterError when the source has no object store to recover from.
    """
    body = _base_cluster(name, namespace, source, image)
    store_obj = object_store
    if store_obj is not None:
        copied = {
            "apiVersion": BARMAN_OBJECTSTORES.api_version, "kind": BARMAN_OBJECTSTORES.kind,
            "metadata": {"name": str(store_obj["metadata"]["name"]), "namespace": namespace},
            # configuration only: no retentionPolicy, so nothing is ever deleted through it
            "spec": {"configuration": with_drill_credentials(
                (store_obj.get("spec") or {}).get("configuration") or {}, has_ca)},
        }
        body["spec"]["externalClusters"] = [{"name": SOURCE, "plugin": {
            "name": BARMAN_PLUGIN,
            "parameters": {"barmanObjectName": copied["metadata"]["name"],
                           "serverName": server_name}}}]
        return RecoveryPlan(body, copied, server_name,
                            f"ObjectStore {copied['metadata']['name']}")
    barman = ((source.get("spec") or {}).get("backup") or {}).get("barmanObjectStore")
    if not isinstance(barman, dict) or not barman.get("destinationPath"):
        raise AdapterError("it has no object store to recover from (neither the Barman Cloud "
                           "plugin nor spec.backup.barmanObjectStore)")
    config = with_drill_credentials({k: v for k, v in barman.items() if k not in (
        "wal", "data", "tags", "historyTags")}, has_ca)  # the archiving options stay behind
    config["serverName"] = server_name
    body["spec"]["externalClusters"] = [{"name": SOURCE, "barmanObjectStore": config}]
    return RecoveryPlan(body, None, server_name, str(config["destinationPath"]))


def read_source(kube: Kube, name: str, namespace: str) -> dict[str, Any]:
    try:
        return kube.get_object(CNPG_CLUSTERS, name, namespace)
    except NotFound:
        raise NotFound(f"CloudNativePG cluster {namespace}/{name} does not exist.") from None


def read_object_store(kube: Kube, name: str, namespace: str) -> dict[str, Any]:
    try:
        return kube.get_object(BARMAN_OBJECTSTORES, name, namespace)
    except NotFound:
        raise NotFound(f"ObjectStore {namespace}/{name} does not exist.") from None


def create(kube: Kube, recovery: RecoveryPlan, credentials: dict[str, bytes]) -> None:
    """Create the drill's credentials Secret (``credentials``: ACCESS_KEY_ID, ACCESS_SECRET_KEY,
    REGION and, with an endpoint CA, ca.crt), the ObjectStore copy and the Cluster; each step
    tolerates what an earlier attempt made. The Secret's content is never returned or logged."""
    namespace = recovery.cluster["metadata"]["namespace"]
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": CREDENTIALS, "namespace": namespace},
            "data": {k: base64.b64encode(v).decode() for k, v in credentials.items()}}
    with contextlib.suppress(Conflict):
        kube.call(kube.core.create_namespaced_secret, namespace, body)
    if recovery.object_store is not None:
        with contextlib.suppress(Conflict):
            kube.create_object(BARMAN_OBJECTSTORES, recovery.object_store, namespace)
    with contextlib.suppress(Conflict):
        kube.create_object(CNPG_CLUSTERS, recovery.cluster, namespace)


@dataclass(frozen=True)
class ClusterState:
    ready: bool
    phase: str
    reason: str  # the phase reason or the Ready condition's message


def state(kube: Kube, name: str, namespace: str) -> ClusterState:
    obj = kube.get_object(CNPG_CLUSTERS, name, namespace)
    status = obj.get("status") or {}
    ready = {}
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            ready = cond
    reason = str(status.get("phaseReason") or ready.get("message") or "")
    return ClusterState(str(ready.get("status")) == "True", str(status.get("phase") or ""),
                        reason)


def primary_pod(kube: Kube, name: str, namespace: str) -> str:
    """The instance pod: ``status.currentPrimary``, else the first instance's name."""
    obj = kube.get_object(CNPG_CLUSTERS, name, namespace)
    return str((obj.get("status") or {}).get("currentPrimary") or f"{name}-1")


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str


def psql_argv(database: str, query: str) -> list[str]:
    """psql in the instance container: tuples only, unaligned, the query inside a READ ONLY
    transaction, stopping at the first error."""
    return ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database,
            "-c", "BEGIN TRANSACTION READ ONLY", "-c", query, "-c", "COMMIT"]


def exit_code(raw: str, pod: str) -> int:
    """The exit code in the status the exec API sends on channel 3 when the command ended: a
    meta/v1 Status, Success, or Failure with reason NonZeroExitCode and the code as the
    message of a cause of type ExitCode (kubernetes kubelet cri/streaming/remotecommand
    exec.go; apimachinery util/remotecommand constants). Any other failure (the command could
    not start, the container is gone) raises with the API's message."""
    try:
        status = json.loads(raw) if raw else None
    except ValueError:
        status = None
    if not isinstance(status, dict):
        raise AdapterError(f"exec in pod {pod} ended without a status")
    if status.get("status") == "Success":
        return 0
    causes = (status.get("details") or {}).get("causes") or []
    if status.get("reason") == "NonZeroExitCode":
        for cause in causes:
            if isinstance(cause, dict) and cause.get("reason", cause.get("type")) == "ExitCode":
                try:
                    return int(cause.get("message"))
                except (TypeError, ValueError):
                    break
    raise AdapterError(f"exec in pod {pod} failed: {status.get('message') or status}")


def exec_in_pod(kube: Kube, pod: str, namespace: str, argv: list[str], *,
                container: str = CONTAINER, timeout: float = 300.0) -> ExecResult:
    """Run ``argv`` in the pod's container through the exec API (pods/exec over a websocket,
    channels 1 stdout, 2 stderr, 3 the status), with the kubernetes client's ``stream``.

    The exit code comes from the status channel (``exit_code``). A fresh API
    client is used: ``stream`` swaps the client's transport for the call, which must not
    touch the one other threads share.
    """
    from kubernetes import client as k8s_client
    from kubernetes.stream import stream

    api = k8s_client.CoreV1Api(k8s_client.ApiClient(copy.deepcopy(
        kube.core.api_client.configuration)))
    try:
        resp = stream(api.connect_get_namespaced_pod_exec, pod, namespace, command=argv,
                      container=container, stdin=False, stdout=True, stderr=True, tty=False,
                      _preload_content=False)
    except k8s_client.ApiException as exc:  # the client wraps a refused upgrade (status 0)
        why = str(exc.reason or exc.status).split(" -+-+- ")[0]
        raise AdapterError(f"exec in pod {namespace}/{pod} was refused: {why}") from None
    except OSError as exc:
        raise AdapterError(f"exec in pod {namespace}/{pod} failed: {exc}") from None
    try:
        resp.run_forever(timeout=timeout)
        out, err = resp.read_stdout() or "", resp.read_stderr() or ""
        if resp.is_open():
            raise AdapterError(f"the command in pod {namespace}/{pod} did not end within "
                               f"{timeout:.0f}s")
        return ExecResult(exit_code(resp.read_channel(ERROR_CHANNEL), pod), out, err)
    finally:
        resp.close()
        api.api_client.close()

"""Kube: endpoint failover and error translation against the emulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapters.errors import AdapterError, Conflict, NotFound, Unreachable
from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from lab.fakes.kube import StandaloneKube, add_node, dead_endpoint, write_kubeconfig

ROOT = Path(__file__).resolve().parents[3]


def status(code: int, message: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
            "message": message}


def test_first_endpoint_dead_second_answers_and_is_remembered(
    kube_emulator: StandaloneKube, tmp_path: Path
) -> None:
    add_node(kube_emulator, "n1")
    dead = dead_endpoint()
    kube = Kube(write_kubeconfig(tmp_path / "kc", dead), [dead, kube_emulator.url])
    assert kube.endpoint == dead
    assert [n.metadata.name for n in kube.call(kube.core.list_node).items] == ["n1"]
    assert kube.endpoint == kube_emulator.url
    before = len(kube_emulator.requests("list v1/nodes"))
    kube.call(kube.core.list_node)
    assert len(kube_emulator.requests("list v1/nodes")) == before + 1
    kube.close()


def test_every_endpoint_dead_is_unreachable_naming_them(tmp_path: Path) -> None:
    first, second = dead_endpoint(), dead_endpoint()
    kube = Kube(write_kubeconfig(tmp_path / "kc", first), [first, second], timeout=(2, 2))
    with pytest.raises(Unreachable) as err:
        kube.call(kube.core.list_node)
    assert first in str(err.value) and second in str(err.value)
    assert "connection refused" in str(err.value)
    assert err.value.temporary


def test_server_error_is_a_temporary_adapter_error(kube_emulator: StandaloneKube, kube: Kube) -> None:
    kube_emulator.inject("list v1/nodes", 500, status(500, "etcdserver: request timed out"))
    with pytest.raises(AdapterError, match="answered 500.*etcdserver: request timed out") as err:
        kube.call(kube.core.list_node)
    assert not isinstance(err.value, Unreachable) and err.value.temporary


def test_forbidden_names_the_rbac_verb(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_node(kube_emulator, "n1")
    kube_emulator.inject("delete v1/nodes", 403, status(
        403, 'nodes "n1" is forbidden: User "drbot" cannot delete resource "nodes"'))
    with pytest.raises(AdapterError, match="cannot delete resource .* RBAC verb 'delete'"):
        kube.call(kube.core.delete_node, "n1")


def test_unauthorized_asks_for_fresh_credentials(kube_emulator: StandaloneKube, kube: Kube) -> None:
    kube_emulator.inject("list v1/nodes", 401, status(401, "Unauthorized"))
    with pytest.raises(AdapterError, match="rejected drbot's credentials"):
        kube.call(kube.core.list_node)


def test_not_found_and_conflict(kube_emulator: StandaloneKube, kube: Kube) -> None:
    with pytest.raises(NotFound):
        kube.get_object(R.KUSTOMIZATIONS, "nope", "flux-system")
    body = {"metadata": {"name": "a", "namespace": "flux-system"}, "spec": {}}
    kube.create_object(R.KUSTOMIZATIONS, body)
    with pytest.raises(Conflict):
        kube.create_object(R.KUSTOMIZATIONS, body)
    kube_emulator.inject("list v1/pods", 429, status(429, "too many requests"))
    with pytest.raises(Conflict, match="too many requests"):
        kube.call(kube.core.list_pod_for_all_namespaces)


def test_list_objects_filters_namespace_client_side(
    kube_emulator: StandaloneKube, kube: Kube
) -> None:
    for ns in ("a", "b"):
        kube.create_object(R.KUSTOMIZATIONS, {"metadata": {"name": "x", "namespace": ns}})
    assert [o["metadata"]["namespace"] for o in kube.list_objects(R.KUSTOMIZATIONS, "b")] == ["b"]
    assert len(kube.list_objects(R.KUSTOMIZATIONS)) == 2


def test_bad_kubeconfig_is_an_adapter_error(tmp_path: Path) -> None:
    kube = Kube(tmp_path / "missing")
    with pytest.raises(AdapterError, match="Cannot load the Kubernetes credentials"):
        kube.call(lambda: None)


def test_building_kube_does_not_import_the_client() -> None:
    code = (
        "import sys\n"
        "from adapters.kubernetes import client, flux, nodes, longhorn, cnpg, etcd\n"
        "client.Kube('/nonexistent', ['https://127.0.0.1:1'])\n"
        "print('kubernetes' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"

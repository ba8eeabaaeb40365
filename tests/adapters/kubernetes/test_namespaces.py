"""Namespaces and Secrets for a rebuilt cluster: create a namespace once, apply a Secret."""

from __future__ import annotations

from adapters.kubernetes import namespaces
from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from lab.fakes.kube import StandaloneKube


def test_ensure_namespace_creates_it_once(kube_emulator: StandaloneKube, kube: Kube) -> None:
    assert namespaces.ensure_namespace(kube, "apps") is True
    assert namespaces.ensure_namespace(kube, "apps") is False
    created = kube_emulator.sent(lambda r: r.method == "POST" and r.url.path == "/api/v1/namespaces")
    assert created == [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}] * 2


def test_apply_secret_creates_then_updates_its_data(kube_emulator: StandaloneKube, kube: Kube) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "flux-system", "namespace": "flux-system"},
            "data": {"identity": "b2xk"}}
    assert namespaces.apply_secret(kube, body) == "created"
    assert kube_emulator.get(R.SECRETS, "flux-system", "flux-system")["data"] == {"identity": "b2xk"}
    assert namespaces.apply_secret(kube, {**body, "data": {"identity": "bmV3"}}) == "updated"
    assert kube_emulator.get(R.SECRETS, "flux-system", "flux-system")["data"] == {"identity": "bmV3"}

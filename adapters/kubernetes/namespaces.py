"""Namespaces and the Secrets in them, for a cluster built again: create a namespace the new
cluster lacks, and apply a Secret manifest (create it, or update its data when it exists).

A Secret's content is passed through and never returned, logged or put in an error message.
"""

from __future__ import annotations

from typing import Any

from adapters.errors import Conflict
from adapters.kubernetes.client import Kube


def ensure_namespace(kube: Kube, name: str) -> bool:
    """Create the namespace: True when created, False when it was there already."""
    try:
        kube.call(kube.core.create_namespace, {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": name}})
    except Conflict:
        return False
    return True


def apply_secret(kube: Kube, body: dict[str, Any]) -> str:
    """Create the Secret of manifest ``body`` (its metadata names it and its namespace), or, when
    it exists, merge-patch its ``data`` and ``stringData``. Returns "created" or "updated"."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    try:
        kube.call(kube.core.create_namespaced_secret, namespace, body)
    except Conflict:
        kube.call(kube.core.patch_namespaced_secret, name, namespace,
                  {"data": body.get("data"), "stringData": body.get("stringData")})
        return "updated"
    return "created"

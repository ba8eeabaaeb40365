"""Kubernetes: every API endpoint answers with drbot's credentials, and the account may do every
(verb, resource) the runbooks need (asked of the API server itself, SelfSubjectAccessReview)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.doctor import rbac
from bot.doctor.result import Line, System, fail, guarded, ok

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from bot.config.inventory import Inventory
    from bot.config.settings import Settings

K8S = System.KUBERNETES
RBAC_FIX = ("grant the worker's account the ClusterRole of helm/drbot/templates/clusterrole.yaml "
            "(`helm upgrade` with worker.rbac.create=true, or apply that rule yourself)")


def _kube(settings: Settings, inventory: Inventory, endpoints: list[str]) -> Kube:
    from adapters.kubernetes.client import Kube

    target = inventory.kubernetes
    kubeconfig = settings.kubeconfig or target.kubeconfig
    return Kube(str(kubeconfig) if kubeconfig else None, endpoints=endpoints,
                ca_file=target.ca_file)


def endpoint_lines(settings: Settings, inventory: Inventory) -> list[Line]:
    """Each endpoint on its own: a dead K3s server is found now, not when failover needs it."""
    from adapters.kubernetes.nodes import list_nodes

    endpoints = list(inventory.kubernetes.endpoints) or [""]
    lines: list[Line] = []
    for endpoint in endpoints:
        subject = f"endpoint {endpoint}" if endpoint else "API (kubeconfig's server)"

        def check(endpoint: str = endpoint, subject: str = subject) -> list[Line]:
            kube = _kube(settings, inventory, [endpoint] if endpoint else [])
            try:
                count = len(list_nodes(kube))
            finally:
                kube.close()
            return [ok(K8S, subject, f"answers with drbot's credentials ({count} nodes)")]

        lines += guarded(K8S, subject, "check that this K3s server is up, and the endpoint, "
                         "kubeconfig and CA file in the inventory's `kubernetes` section", check)
    return lines


def access_lines(settings: Settings, inventory: Inventory) -> list[Line]:
    """One line per denied (verb, resource); one green line when all are allowed."""
    from adapters.kubernetes.access import can_i

    def check() -> list[Line]:
        kube = _kube(settings, inventory, list(inventory.kubernetes.endpoints))
        try:
            needed = rbac.accesses()
            denied = []
            for access in needed:
                verdict = can_i(kube, access.verb, access.group, access.resource,
                                access.subresource)
                if not verdict.allowed:
                    denied.append(access)
        finally:
            kube.close()
        if not denied:
            return [ok(K8S, "permissions", f"all {len(needed)} (verb, resource) pairs of the "
                                           "worker's ClusterRole are allowed")]
        return [fail(K8S, "permissions", "denied to drbot's account: "
                     + ", ".join(str(access) for access in denied), RBAC_FIX)]

    return guarded(K8S, "permissions", "check the kubeconfig and the endpoints", check)


def check(settings: Settings, inventory: Inventory) -> list[Line]:
    return endpoint_lines(settings, inventory) + access_lines(settings, inventory)

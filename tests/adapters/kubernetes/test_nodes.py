"""Nodes: read, cordon, drain with PodDisruptionBudgets, delete with finalizers, wait Ready."""

from __future__ import annotations

import pytest

from adapters.errors import Cancelled, NotFound, TimedOut
from adapters.kubernetes import nodes
from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from adapters.progress import Hooks, Progress
from lab.fakes.kube import (
    Reactor,
    StandaloneKube,
    add_node,
    add_pdb,
    add_pod,
    set_node_ready,
    set_pdb_allowed,
)


def test_list_get_and_cordon(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_node(kube_emulator, "k3s-2", roles=("control-plane", "master"), etcd=True, ip="10.0.0.2")
    add_node(kube_emulator, "k3s-1", ready=False, ip="10.0.0.1")
    listed = nodes.list_nodes(kube)
    assert [n.name for n in listed] == ["k3s-1", "k3s-2"]
    server = nodes.get_node(kube, "k3s-2")
    assert server.roles == ["control-plane", "etcd", "master"] and server.etcd
    assert server.internal_ip == "10.0.0.2" and server.ready and not server.unschedulable
    assert not listed[0].ready and listed[0].ready_reason == "NodeStatusUnknown"
    assert nodes.cordon(kube, "k3s-1").unschedulable is True
    assert nodes.get_node(kube, "k3s-1").unschedulable is True
    assert nodes.uncordon(kube, "k3s-1").unschedulable is False
    with pytest.raises(NotFound, match="Node k3s-9 does not exist"):
        nodes.cordon(kube, "k3s-9")


def test_pods_on_node_filters_client_side(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_node(kube_emulator, "a")
    add_pod(kube_emulator, "web-1", "apps", "a", pvc="data-web-1")
    add_pod(kube_emulator, "web-2", "apps", "b")
    add_pod(kube_emulator, "agent", "kube-system", "a", owner_kind="DaemonSet")
    pods = nodes.pods_on_node(kube, "a")
    assert [(p.ref, p.daemonset, p.pvcs) for p in pods] == [
        ("apps/web-1", False, ["data-web-1"]), ("kube-system/agent", True, [])]


def test_drain_evicts_all_but_daemonset_and_mirror_pods(
    kube_emulator: StandaloneKube, kube: Kube
) -> None:
    add_node(kube_emulator, "a")
    add_pod(kube_emulator, "web-1", "apps", "a")
    add_pod(kube_emulator, "db-0", "db", "a", owner_kind="StatefulSet")
    add_pod(kube_emulator, "agent", "kube-system", "a", owner_kind="DaemonSet")
    add_pod(kube_emulator, "static", "kube-system", "a", owner_kind="Node", mirror=True)
    add_pod(kube_emulator, "other", "apps", "b")
    evicted = nodes.drain(kube, "a", timeout=5, poll=0.05)
    assert sorted(evicted) == ["apps/web-1", "db/db-0"]
    left = {p.ref for p in nodes.pods_on_node(kube, "a")}
    assert left == {"kube-system/agent", "kube-system/static"}
    assert kube_emulator.get(R.PODS, "other", "apps") is not None


def test_drain_retries_while_the_budget_refuses(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_node(kube_emulator, "a")
    add_pod(kube_emulator, "web-1", "apps", "a", labels={"app": "web"})
    add_pdb(kube_emulator, "web-pdb", "apps", {"app": "web"})
    seen: list[Progress] = []

    def report(progress: Progress) -> None:
        seen.append(progress)
        if progress.status == "blocked":  # the budget allows it once another replica is up
            set_pdb_allowed(kube_emulator, "web-pdb", "apps", 1)

    assert nodes.drain(kube, "a", timeout=5, poll=0.05, hooks=Hooks(report=report)) == [
        "apps/web-1"]
    assert [p.status for p in seen] == ["started", "blocked", "evicted"]
    assert "web-pdb" in seen[1].message
    evictions = kube_emulator.requests(lambda r: r.subresource == "eviction")
    assert len(evictions) == 2


def test_drain_timeout_names_the_pdb_and_pod(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_node(kube_emulator, "a")
    add_pod(kube_emulator, "web-1", "apps", "a", labels={"app": "web"})
    add_pod(kube_emulator, "web-2", "apps", "a", labels={"app": "web", "tier": "leader"})
    add_pdb(kube_emulator, "web-pdb", "apps", {"tier": "leader"})
    with pytest.raises(TimedOut) as err:
        nodes.drain(kube, "a", timeout=0.4, poll=0.05)
    text = str(err.value)
    assert "pod apps/web-2 is held by PodDisruptionBudget web-pdb" in text
    assert "web-1" not in text and "stays cordoned" in text
    assert kube_emulator.get(R.PODS, "web-1", "apps") is None


def test_drain_cancel(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_node(kube_emulator, "a")
    add_pod(kube_emulator, "web-1", "apps", "a", labels={"app": "web"})
    add_pdb(kube_emulator, "web-pdb", "apps", {"app": "web"})
    calls: list[int] = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled, match="stays cordoned"):
        nodes.drain(kube, "a", timeout=30, poll=0.05, hooks=Hooks(cancelled=cancelled))


def test_delete_node_waits_for_finalizers(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_node(kube_emulator, "k3s-3", etcd=True, finalizers=("wrangler.cattle.io/managed-etcd",))

    def etcd_controller() -> None:  # K3s removes the member, then its finalizer
        node = kube_emulator.get(R.NODES, "k3s-3")
        if node and node["metadata"].get("deletionTimestamp"):
            kube_emulator.patch(R.NODES, "k3s-3", {"metadata": {"finalizers": []}})

    with Reactor(etcd_controller):
        nodes.delete_node(kube, "k3s-3", wait_timeout=5, poll=0.05)
    with pytest.raises(NotFound):
        nodes.get_node(kube, "k3s-3")
    nodes.delete_node(kube, "k3s-3", wait_timeout=1, poll=0.05)  # already gone: fine


def test_delete_node_timeout_names_the_finalizer(kube_emulator: StandaloneKube, kube: Kube) -> None:
    add_node(kube_emulator, "k3s-3", finalizers=("wrangler.cattle.io/managed-etcd",))
    with pytest.raises(TimedOut, match="pending finalizers: wrangler.cattle.io/managed-etcd"):
        nodes.delete_node(kube, "k3s-3", wait_timeout=0.3, poll=0.05)


def test_wait_ready(kube_emulator: StandaloneKube, kube: Kube) -> None:
    polls: list[int] = []

    def joining() -> bool:
        polls.append(1)
        if len(polls) == 3:
            add_node(kube_emulator, "k3s-3", ready=False)
        if len(polls) == 6:
            set_node_ready(kube_emulator, "k3s-3", True)
        return False

    node = nodes.wait_ready(kube, "k3s-3", timeout=5, poll=0.05, hooks=Hooks(cancelled=joining))
    assert node.ready and len(polls) >= 6
    add_node(kube_emulator, "k3s-4", ready=False)
    with pytest.raises(TimedOut, match="k3s-4 did not become Ready.*NodeStatusUnknown"):
        nodes.wait_ready(kube, "k3s-4", timeout=0.2, poll=0.05)
    with pytest.raises(TimedOut, match="k3s-5 did not become Ready.*has not joined"):
        nodes.wait_ready(kube, "k3s-5", timeout=0.2, poll=0.05)

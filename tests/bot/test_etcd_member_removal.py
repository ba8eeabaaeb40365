"""rebuild-node deletes a server Node only when K3s will remove its etcd member in doing so (the
managed-etcd finalizer and the node-name annotation, k3s pkg/etcd/member_controller.go), and a
server Node already gone needs --member-gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.kubernetes import nodes
from adapters.kubernetes import resources as R
from adapters.progress import Hooks
from bot.config.inventory import Inventory, KubernetesTarget, Node
from bot.config.settings import Settings
from bot.errors import CommandError
from bot.runbook import StepContext
from bot.worker.services import Services
from handlers.rebuild_node import delete_nodes
from lab.fakes.kube import StandaloneKube, add_node, write_kubeconfig

MEMBER = {"etcd.k3s.cattle.io/node-name": "k3s-2-0a1b2c3d"}


def step(server: StandaloneKube, tmp_path: Path) -> StepContext:
    config = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    inventory = Inventory(kubernetes=KubernetesTarget(kubeconfig=str(config)), nodes={
        "k3s-2": Node(host="pve1", vmid=102, role="server", terraform_address="vm.k3s_2",
                      ansible_host="k3s-2")})
    return StepContext("job", "delete Node", {}, Hooks(), Services(Settings(kubeconfig=None),
                                                                   inventory), inventory)


@pytest.mark.parametrize(("finalizers", "annotations", "missing"), [
    ((), MEMBER, "the finalizer wrangler.cattle.io/managed-etcd-controller"),
    ((nodes.ETCD_FINALIZER,), {}, "the annotation etcd.k3s.cattle.io/node-name"),
])
def test_a_server_node_k3s_cannot_remove_from_etcd_is_not_deleted(
        kube_emulator: StandaloneKube, tmp_path: Path, finalizers: tuple[str, ...],
        annotations: dict[str, str], missing: str) -> None:
    add_node(kube_emulator, "k3s-2", etcd=True, finalizers=finalizers, annotations=annotations)
    with pytest.raises(CommandError, match=missing):
        delete_nodes(step(kube_emulator, tmp_path), ["k3s-2"])
    assert not (kube_emulator.get(R.NODES, "k3s-2") or {}).get("metadata", {}).get(
        "deletionTimestamp")


def test_a_gone_server_node_needs_the_confirmation(kube_emulator: StandaloneKube,
                                                   tmp_path: Path) -> None:
    ctx = step(kube_emulator, tmp_path)
    with pytest.raises(CommandError, match="etcdctl .* member list.*--member-gone"):
        delete_nodes(ctx, ["k3s-2"])
    assert delete_nodes(ctx, ["k3s-2"], confirmed=True) == {"deleted": []}


def test_member_gone_is_a_flag_of_its_own_beside_the_policy_phrase() -> None:
    """The policy's `--confirm PHRASE` is global to every command; rebuild-node's own yes/no
    flag must not be swallowed by it (it was, under the name `--confirm`)."""
    from bot import registry

    registry.load([])
    _, parsed = registry.parse("/dr rebuild-node k3s-2 --member-gone")
    assert parsed.args["member-gone"] is True and parsed.confirm is None
    _, parsed = registry.parse('/dr rebuild-node k3s-2 --confirm "rebuild it"')
    assert parsed.args["member-gone"] is False and parsed.confirm == "rebuild it"

"""handlers/preflight.py against an independent model: etcd quorum for 1 to 7 members (even
counts, members down, members being deleted, one or two targets), Longhorn's last healthy replica
(every replica health state), drbot's own nodes. The cluster is given at the adapter interface
(``nodes.list_nodes``, ``longhorn.list_volumes``), the project's own boundary."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.kubernetes import longhorn
from adapters.kubernetes import nodes as k8s_nodes
from adapters.kubernetes.longhorn import Replica, Volume
from adapters.kubernetes.nodes import KubeNode
from bot.config.inventory import Inventory
from bot.errors import CommandError
from handlers import preflight

KUBE: Any = object()  # handed to the replaced adapter functions, which check they got it


def asked(kube: Any) -> None:
    """The checks ask the cluster they were given, not some other client."""
    assert kube is KUBE


def node(name: str, ready: bool = True, etcd: bool = True, deleting: bool = False) -> KubeNode:
    return KubeNode(name=name, ready=ready, unschedulable=False, roles=["etcd"] if etcd else [],
                etcd=etcd, internal_ip="10.0.0.1", deleting=deleting)


def inventory(*names: str, drbot: tuple[str, ...] = ()) -> Inventory:
    return Inventory.model_validate({
        "nodes": {n: {"host": "pve1", "vmid": 100 + i, "role": "server",
                      "terraform_address": f"vm.k3s[\"{n}\"]", "ansible_host": n}
                  for i, n in enumerate(names, 1)},
        "drbot_nodes": list(drbot)})


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    state: dict[str, list[Any]] = {"nodes": [], "volumes": []}
    monkeypatch.setattr(k8s_nodes, "list_nodes", lambda kube: asked(kube) or list(state["nodes"]))
    monkeypatch.setattr(longhorn, "list_volumes",
                        lambda kube: asked(kube) or list(state["volumes"]))
    return state


# -- etcd ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("members", "need"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4),
                                               (7, 4)])
def test_quorum_is_a_strict_majority(members: int, need: int) -> None:
    assert preflight.quorum(members) == need


def verdict(cluster: dict[str, list[Any]], members: list[KubeNode], targets: list[str]) -> str:
    cluster["nodes"] = [*members, node("agent", etcd=False)]
    names = [m.name for m in members]
    try:
        preflight.check_etcd(KUBE, inventory(*names), targets)
    except CommandError as exc:
        text = str(exc)
        if "has lost quorum" in text:
            assert "cluster-reset" in text
            return "lost"
        assert "would lose quorum" in text, text
        return "would lose"
    return "ok"


def model(members: list[KubeNode], targets: list[str]) -> str:
    """etcd's rule, written out independently: a strict majority of all members healthy now, and
    still after the targets stop (a member being deleted or not Ready is not healthy)."""
    size = len(members)
    healthy = {m.name for m in members if m.ready and not m.deleting}
    if 2 * len(healthy) <= size:
        return "lost"
    if 2 * len(healthy - set(targets)) <= size:
        return "would lose"
    return "ok"


MEMBER = st.tuples(st.booleans(), st.booleans())  # (ready, being deleted)


@settings(max_examples=300, deadline=None)
@given(flags=st.lists(MEMBER, min_size=1, max_size=7), picks=st.sets(st.integers(0, 6),
                                                                       max_size=2))
def test_every_etcd_of_one_to_seven_members_is_judged_by_majority(
        flags: list[tuple[bool, bool]], picks: set[int]) -> None:
    members = [node(f"s{i}", ready, deleting=deleting) for i, (ready, deleting) in
               enumerate(flags)]
    targets = [members[i].name for i in sorted(picks) if i < len(members)]
    state: dict[str, list[Any]] = {"nodes": [], "volumes": []}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(k8s_nodes, "list_nodes", lambda kube: list(state["nodes"]))
        assert verdict(state, members, targets) == model(members, targets)


def test_four_healthy_members_lose_one_but_not_two(cluster: dict[str, list[Any]]) -> None:
    four = [node(f"s{i}") for i in range(4)]
    assert verdict(cluster, four, ["s0"]) == "ok"
    assert verdict(cluster, four, ["s0", "s1"]) == "would lose"


def test_an_even_etcd_with_one_member_down_cannot_lose_another(
        cluster: dict[str, list[Any]]) -> None:
    """(S+1)//2 instead of S//2+1 would let 2 of 4 members carry on: no majority."""
    members = [node("s0", ready=False), node("s1"), node("s2"), node("s3")]
    assert verdict(cluster, members, ["s1"]) == "would lose"
    assert verdict(cluster, members, ["s0"]) == "ok"  # the dead one itself may go
    assert verdict(cluster, [node("a"), node("b")], ["a"]) == "would lose"


def test_a_member_being_deleted_is_not_healthy(cluster: dict[str, list[Any]]) -> None:
    members = [node("s0", deleting=True), node("s1"), node("s2")]
    assert verdict(cluster, members, ["s1"]) == "would lose"
    assert verdict(cluster, [node("s0", deleting=True), node("s1", ready=False), node("s2")],
                   []) == "lost"


def test_refusal_names_the_member_to_rebuild_first(cluster: dict[str, list[Any]]) -> None:
    cluster["nodes"] = [node("s1"), node("s2"), node("s3", ready=False)]
    with pytest.raises(CommandError, match=r"Rebuild s3 first \(/dr rebuild-node s3\)"):
        preflight.check_etcd(KUBE, inventory("s1", "s2", "s3"), ["s2"])


def test_no_etcd_member_is_no_refusal(cluster: dict[str, list[Any]]) -> None:
    cluster["nodes"] = [node("a1", etcd=False)]
    assert preflight.check_etcd(KUBE, inventory("a1"), ["a1"]).size == 0


# -- Longhorn -----------------------------------------------------------------------------------

STATES = {  # replica health as Longhorn's datastore.IsAvailableHealthyReplica decides it
    "healthy": True, "failed": False, "never healthy": False, "being deleted": False}


def replica(volume: str, on: str, state: str) -> Replica:
    return Replica(name=f"{volume}-r-{on}-{state}", volume=volume, node=on,
                   healthy=STATES[state], state="running" if STATES[state] else "error",
                   failed_at="" if STATES[state] else "2026-12-01T00:00:00Z")


def volume(name: str, *replicas: Replica, pvc: str = "") -> Volume:
    return Volume(name=name, state="attached", robustness="healthy", size="1Gi",
                  number_of_replicas=len(replicas), node="n1", replicas=list(replicas),
                  pvc=pvc, pvc_namespace="apps" if pvc else "")


@pytest.mark.parametrize("elsewhere", sorted(STATES))
def test_a_volume_is_lost_unless_a_healthy_replica_lives_elsewhere(
        cluster: dict[str, list[Any]], elsewhere: str) -> None:
    cluster["volumes"] = [volume("v", replica("v", "gone", "healthy"),
                                 replica("v", "other", elsewhere))]
    lost = [v.name for v in preflight.volumes_lost_with(KUBE, ["gone"])]
    assert lost == ([] if STATES[elsewhere] else ["v"])


def test_a_volume_without_a_replica_on_the_nodes_is_never_lost(
        cluster: dict[str, list[Any]]) -> None:
    cluster["volumes"] = [volume("v", replica("v", "other", "failed"))]
    assert preflight.volumes_lost_with(KUBE, ["gone"]) == []


def test_healthy_copies_all_on_the_nodes_going_are_lost(cluster: dict[str, list[Any]]) -> None:
    cluster["volumes"] = [volume("v", replica("v", "a", "healthy"), replica("v", "b", "healthy"))]
    assert [v.name for v in preflight.volumes_lost_with(KUBE, ["a", "b"])] == ["v"]
    assert preflight.volumes_lost_with(KUBE, ["a"]) == []


@settings(max_examples=200, deadline=None)
@given(layout=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(sorted(STATES))),
                       min_size=1, max_size=5),
       going=st.sets(st.sampled_from(["a", "b", "c"]), min_size=1))
def test_lost_volumes_match_the_rule_for_any_layout(
        layout: list[tuple[str, str]], going: set[str]) -> None:
    replicas = [replica("v", on, state) for on, state in layout]
    expected = any(r.node in going for r in replicas) and not any(
        STATES[state] and on not in going for on, state in layout)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(longhorn, "list_volumes", lambda kube: [volume("v", *replicas)])
        assert bool(preflight.volumes_lost_with(KUBE, going)) == expected


def test_the_longhorn_refusal_names_the_volume_and_its_restore(
        cluster: dict[str, list[Any]]) -> None:
    cluster["volumes"] = [volume("pvc-1", replica("pvc-1", "gone", "healthy"), pvc="media")]
    with pytest.raises(CommandError) as refused:
        preflight.check_longhorn(KUBE, ["gone"])
    assert "pvc-1 (PVC apps/media)" in str(refused.value)
    assert "/dr restore apps/media" in str(refused.value)


# -- drbot itself ---------------------------------------------------------------------------------


def test_a_node_running_drbot_is_refused_and_others_are_not() -> None:
    inv = inventory("n1", "n2", drbot=("n2",))
    preflight.check_drbot(inv, ["n1"])
    with pytest.raises(CommandError, match="n2 runs drbot's own worker or Redis"):
        preflight.check_drbot(inv, ["n1", "n2"])


# -- the words an operator acts on ----------------------------------------------------------------
# The refusals carry commands people run during an outage: their exact text is the behaviour.

RESET_STEP_2 = ("`sudo k3s server --cluster-reset` (etcd restarts as a one-member cluster with "
                "this server's data; to go back to a snapshot instead add "
                "`--cluster-reset-restore-path=<snapshot>`, and on a new machine `--token="
                "<contents of /var/lib/rancher/k3s/server/token>`)")


def test_lost_quorum_gives_the_cluster_reset_procedure_for_this_cluster(
        cluster: dict[str, list[Any]]) -> None:
    cluster["nodes"] = [node("s1"), node("s2", ready=False), node("s3", ready=False)]
    with pytest.raises(CommandError) as refused:
        preflight.check_etcd(KUBE, inventory("s1", "s2", "s3"), [])
    assert str(refused.value) == (
        "etcd has lost quorum: 1 of its 3 members are healthy (s1), it needs 2; s2, s3 are down. "
        "Nothing can be removed or joined until quorum is back. Follow K3s's cluster-reset "
        "procedure:\n"
        "  1. On s1 (s1), a surviving server: `sudo systemctl stop k3s`\n"
        f"  2. {RESET_STEP_2}\n"
        "  3. `sudo systemctl start k3s` and wait until `kubectl get nodes` answers\n"
        "  4. `kubectl delete node s2 s3` (etcd no longer has them)\n"
        "  5. Then rebuild the lost servers with /dr rebuild-host <host> or /dr rebuild-node <node>.")


def test_the_procedure_restarts_every_other_survivor_on_the_first_ones_data() -> None:
    text = preflight.cluster_reset_procedure(inventory("s1", "s2", "s3"), ["s2", "s1"], ["s3"])
    assert text.splitlines()[1:] == [
        "  1. On s1 (s1), a surviving server: `sudo systemctl stop k3s`",
        f"  2. {RESET_STEP_2}",
        "  3. `sudo systemctl start k3s` and wait until `kubectl get nodes` answers",
        "  4. `kubectl delete node s3` (etcd no longer has them)",
        "  5. On s2: `sudo systemctl stop k3s && sudo rm -rf /var/lib/rancher/k3s/server/db/ && "
        "sudo systemctl start k3s` (they rejoin s1)",
        "  6. Then rebuild the lost servers with /dr rebuild-host <host> or /dr rebuild-node <node>."]


def test_an_unreachable_api_points_to_a_restore_from_snapshot(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.errors import Unreachable

    def down(kube: Any) -> list[KubeNode]:
        raise Unreachable("connection refused")
    monkeypatch.setattr(k8s_nodes, "list_nodes", down)
    with pytest.raises(CommandError) as refused:
        preflight.check_etcd(KUBE, inventory("s1"), ["s1"])
    assert str(refused.value) == (
        "cannot check etcd quorum: connection refused. If every server is down or etcd lost "
        "quorum, the Kubernetes API cannot answer; No etcd member is healthy: restore the cluster "
        "from an etcd snapshot. On the first rebuilt server run `sudo k3s server --cluster-reset "
        "--cluster-reset-restore-path=<snapshot file or S3 object name> --token=<contents of "
        "/var/lib/rancher/k3s/server/token from the old cluster>`, then `sudo rm -rf "
        "/var/lib/rancher/k3s/server/db/` on every other server before starting k3s there; or run "
        "/dr rebuild-cluster (/dr backups lists the snapshots).")


@pytest.mark.parametrize(("members", "targets", "text"), [
    ([node("s1"), node("s2"), node("s3", ready=False)], ["s2"],
     "etcd would lose quorum: it has 3 members and needs 2 healthy; stopping s2 leaves 1 (s1); "
     "s3 already down. Rebuild s3 first (/dr rebuild-node s3), then this one."),
    ([node("s1"), node("s2")], ["s1"],
     "etcd would lose quorum: it has 2 members and needs 2 healthy; stopping s1 leaves 1 (s2). "
     "Add a healthy server first, or accept the outage with the cluster-reset procedure."),
])
def test_a_quorum_refusal_says_what_to_do_first(cluster: dict[str, list[Any]], members: list[KubeNode],
                                                targets: list[str], text: str) -> None:
    cluster["nodes"] = members
    with pytest.raises(CommandError) as refused:
        preflight.check_etcd(KUBE, inventory(*[m.name for m in members]), targets)
    assert str(refused.value) == text


def test_check_nodes_runs_every_check(cluster: dict[str, list[Any]]) -> None:
    cluster["nodes"] = [node("s1"), node("s2"), node("s3")]
    cluster["volumes"] = [volume("v", replica("v", "s3", "healthy"), pvc="data")]
    inv = inventory("s1", "s2", "s3", drbot=("s1",))
    for target, refusal in (("s1", "drbot's own worker"), ("s3", "last healthy replica")):
        with pytest.raises(CommandError, match=refusal):
            preflight.check_nodes(KUBE, inv, [target])
    cluster["nodes"] = [node("s1"), node("s2", ready=False), node("s3")]
    with pytest.raises(CommandError, match="would lose quorum"):
        preflight.check_nodes(KUBE, inv, ["s2", "s3"])
    cluster["volumes"] = []
    preflight.check_nodes(KUBE, inv, ["s2"])
    cluster["nodes"] = [node("s1"), node("s2", ready=False), node("s3", ready=False)]
    with pytest.raises(CommandError, match=r"has lost quorum(.|\n)*On s1 \(s1\)"):
        preflight.check_nodes(KUBE, inv, ["s2"])  # the procedure names s1 from the inventory


def test_a_ready_node_is_warned_about_and_a_gone_or_dead_one_is_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.errors import NotFound

    def get(kube: Any, name: str) -> KubeNode:
        asked(kube)
        if name == "gone":
            raise NotFound(name)
        return node(name, ready=name in ("alive", "zeta"))
    monkeypatch.setattr(k8s_nodes, "get_node", get)
    assert preflight.still_ready(KUBE, ["gone", "zeta", "dead", "alive"]) == [
        f"warning: {name} is still Ready: its pods will be drained and its VM stopped and "
        "destroyed. Make sure this is the node you mean." for name in ("alive", "zeta")]


def test_the_longhorn_refusal_in_full(cluster: dict[str, list[Any]]) -> None:
    cluster["volumes"] = [volume("pvc-1", replica("pvc-1", "gone", "healthy"), pvc="media"),
                          volume("pvc-2", replica("pvc-2", "gone", "healthy"))]
    with pytest.raises(CommandError) as refused:
        preflight.check_longhorn(KUBE, ["gone"])
    assert str(refused.value) == (
        "rebuilding gone would lose the last healthy replica of Longhorn volume(s) pvc-1 (PVC "
        "apps/media); pvc-2. Fix: give each a healthy replica on another node first (Longhorn "
        "UI: the volume, then 'Update Replicas Count', or delete one of the replicas that share "
        "the node so Longhorn rebuilds it elsewhere; check replica anti-affinity), wait until it "
        "shows healthy, then run this again. If that disk is already lost, restore from backup "
        "instead: /dr restore apps/media.")
    assert preflight.names([]) == "none" and preflight.names({"b", "a"}) == "a, b"


def test_the_drbot_refusal_in_full() -> None:
    with pytest.raises(CommandError) as refused:
        preflight.check_drbot(inventory("n1", "n2", drbot=("n2", "n1")), ["n2", "n1"])
    assert str(refused.value) == (
        "n1, n2 runs drbot's own worker or Redis (inventory `drbot_nodes`): rebuilding it would "
        "stop drbot in the middle of this job and lose its records. Move drbot to another node "
        "first (e.g. `kubectl cordon n1` and restart drbot's pods, then update `drbot_nodes`), or "
        "run drbot standalone (see the README), then try again.")


def test_the_longhorn_refusal_offers_a_restore_only_for_volumes_with_a_pvc(
        cluster: dict[str, list[Any]]) -> None:
    cluster["volumes"] = [volume("pvc-2", replica("pvc-2", "gone", "healthy"))]
    with pytest.raises(CommandError) as refused:
        preflight.check_longhorn(KUBE, ["gone"])
    assert str(refused.value).endswith("shows healthy, then run this again.")
    assert preflight.restore_hint([volume("a", pvc="a"), volume("b", pvc="b")]) == (
        " If that disk is already lost, restore from backup instead: /dr restore apps/a, "
        "/dr restore apps/b.")


def test_the_procedure_for_a_survivor_the_inventory_lacks_and_several_others() -> None:
    text = preflight.cluster_reset_procedure(inventory("s1"), ["s9", "s2", "s3"], ["s1"])
    assert "  1. On s2, a surviving server: `sudo systemctl stop k3s`" in text.splitlines()
    assert "  5. On s3, s9: `sudo systemctl stop k3s && " in text

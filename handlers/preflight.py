"""Preflight checks for every change that takes nodes away: Longhorn, etcd quorum, drbot itself.

Each check reads live state and raises a CommandError that says what is wrong and what to do, so
the runner shows it as a refusal. The runner runs the checks at planning and again right before
every destructive step (the world may have changed while the job waited or ran).

etcd is K3s's embedded one: its members are the Nodes labelled ``node-role.kubernetes.io/etcd``
(a Node being deleted stays a member until K3s's finalizer removed it) and a member counts as
healthy while its Node is Ready. With S members, etcd needs ⌊S/2⌋+1 healthy ones. Taking members
away one by one, each stopped member still counts in S until K3s removes it, so the healthy
members left must be ⌊S/2⌋+1 of the S; for an odd S this is the design's ⌊(S−1)/2⌋+1 after the
removal, for an even S it is one more (a two-member etcd with one stopped cannot remove it).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.errors import Unreachable
from bot.errors import CommandError

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from adapters.kubernetes.longhorn.volumes import Volume
    from bot.config.inventory import Inventory

DATA_DIR = "/var/lib/rancher/k3s"


def quorum(members: int) -> int:
    return members // 2 + 1


def names(items: Collection[str]) -> str:
    return ", ".join(sorted(items)) or "none"


# -- drbot itself -------------------------------------------------------------------------------


def check_drbot(inventory: Inventory, nodes: Collection[str]) -> None:
    """Refuse a change to a node that runs drbot's own worker or Redis."""
    own = sorted(set(nodes) & set(inventory.drbot_nodes))
    if own:
        raise CommandError(
            f"{names(own)} runs drbot's own worker or Redis (inventory `drbot_nodes`): rebuilding "
            "it would stop drbot in the middle of this job and lose its records. Move drbot to "
            f"another node first (e.g. `kubectl cordon {own[0]}` and restart drbot's pods, then "
            "update `drbot_nodes`), or run drbot standalone (see the README), then try again.")


# -- Longhorn -----------------------------------------------------------------------------------


def volumes_lost_with(kube: Kube, nodes: Collection[str]) -> list[Volume]:
    """Volumes with a replica on ``nodes`` and no healthy replica anywhere else."""
    from adapters.kubernetes import longhorn

    gone = set(nodes)
    return [v for v in longhorn.list_volumes(kube)
            if any(r.node in gone for r in v.replicas)
            and not any(r.healthy and r.node not in gone for r in v.replicas)]


def pvc_of(volume: Volume) -> str:
    return f"{volume.pvc_namespace}/{volume.pvc}" if volume.pvc else ""


def describe_volume(volume: Volume) -> str:
    pvc = pvc_of(volume)
    return f"{volume.name} (PVC {pvc})" if pvc else volume.name


def check_longhorn(kube: Kube, nodes: Collection[str]) -> None:
    """Refuse when a volume would lose its last healthy replica."""
    losing = volumes_lost_with(kube, nodes)
    if losing:
        listed = "; ".join(describe_volume(v) for v in losing)
        raise CommandError(
            f"rebuilding {names(nodes)} would lose the last healthy replica of Longhorn "
            f"volume(s) {listed}. Fix: give each a healthy replica on another node first (Longhorn "
            "UI: the volume, then 'Update Replicas Count', or delete one of the replicas that "
            "share the node so Longhorn rebuilds it elsewhere; check replica anti-affinity), "
            "wait until it shows healthy, then run this again." + restore_hint(losing))


def restore_hint(volumes: Collection[Volume]) -> str:
    commands = [f"/dr restore {pvc_of(v)}" for v in volumes if v.pvc]
    return (" If that disk is already lost, restore from backup instead: "
            + ", ".join(commands) + ".") if commands else ""


# -- etcd ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EtcdView:
    members: tuple[str, ...]
    healthy: frozenset[str]

    @property
    def size(self) -> int:
        return len(self.members)


def etcd_view(kube: Kube) -> EtcdView:
    from adapters.kubernetes import nodes

    found = [n for n in nodes.list_nodes(kube) if n.etcd]
    return EtcdView(tuple(n.name for n in found),
                    frozenset(n.name for n in found if n.ready and not n.deleting))


def cluster_reset_procedure(inventory: Inventory, survivors: Collection[str],
                            lost: Collection[str]) -> str:
    """K3s's cluster-reset procedure (domain.md §5) with this cluster's names filled in."""
    token = f"{DATA_DIR}/server/token"
    if not survivors:
        return (
            "No etcd member is healthy: restore the cluster from an etcd snapshot. On the first "
            "rebuilt server run `sudo k3s server --cluster-reset --cluster-reset-restore-path="
            f"<snapshot file or S3 object name> --token=<contents of {token} from the old "
            f"cluster>`, then `sudo rm -rf {DATA_DIR}/server/db/` on every other server before "
            "starting k3s there; or run /dr rebuild-cluster (/dr backups lists the snapshots).")
    first = sorted(survivors)[0]
    entry = inventory.nodes.get(first)
    where = f" ({entry.ssh_address or entry.ansible_host})" if entry else ""
    steps = [
        f"On {first}{where}, a surviving server: `sudo systemctl stop k3s`",
        "`sudo k3s server --cluster-reset` (etcd restarts as a one-member cluster with this "
        "server's data; to go back to a snapshot instead add `--cluster-reset-restore-path="
        "<snapshot>`, and on a new machine `--token=<contents of " + token + ">`)",
        "`sudo systemctl start k3s` and wait until `kubectl get nodes` answers",
        f"`kubectl delete node {' '.join(sorted(lost))}` (etcd no longer has them)",
    ]
    others = sorted(set(survivors) - {first})
    if others:
        steps.append(f"On {', '.join(others)}: `sudo systemctl stop k3s && sudo rm -rf "
                     f"{DATA_DIR}/server/db/ && sudo systemctl start k3s` (they rejoin {first})")
    steps.append("Then rebuild the lost servers with /dr rebuild-host <host> or "
                 "/dr rebuild-node <node>.")
    return "Follow K3s's cluster-reset procedure:\n" + "\n".join(
        f"  {i}. {text}" for i, text in enumerate(steps, 1))


def check_etcd(kube: Kube, inventory: Inventory, removing: Collection[str]) -> EtcdView:
    """Refuse unless etcd has quorum now and keeps it while ``removing`` are stopped and removed.

    When quorum is already lost, the refusal carries the cluster-reset procedure.
    """
    try:
        view = etcd_view(kube)
    except Unreachable as exc:
        raise CommandError(
            f"cannot check etcd quorum: {exc}. If every server is down or etcd lost quorum, the "
            "Kubernetes API cannot answer; " + cluster_reset_procedure(inventory, (), ())) from None
    if not view.size:
        return view
    need = quorum(view.size)
    down = set(view.members) - view.healthy
    if len(view.healthy) < need:
        raise CommandError(
            f"etcd has lost quorum: {len(view.healthy)} of its {view.size} members are healthy "
            f"({names(view.healthy)}), it needs {need}; {names(down)} are down. Nothing can be "
            "removed or joined until quorum is back. "
            + cluster_reset_procedure(inventory, view.healthy, down))
    targets = [m for m in view.members if m in removing]
    if not targets:
        return view
    left = view.healthy - set(targets)
    if len(left) < need:
        already = f"; {names(down - set(targets))} already down" if down - set(targets) else ""
        first = sorted(down - set(targets))
        hint = (f" Rebuild {first[0]} first (/dr rebuild-node {first[0]}), then this one."
                if first else " Add a healthy server first, or accept the outage with the "
                "cluster-reset procedure.")
        raise CommandError(
            f"etcd would lose quorum: it has {view.size} members and needs {need} healthy; "
            f"stopping {names(targets)} leaves {len(left)} ({names(left)}){already}.{hint}")
    return view


# -- composition --------------------------------------------------------------------------------


def check_nodes(kube: Kube, inventory: Inventory, nodes: Collection[str]) -> None:
    """Everything a node change must pass: drbot itself, etcd quorum, Longhorn's last replicas."""
    check_drbot(inventory, nodes)
    check_etcd(kube, inventory, nodes)
    check_longhorn(kube, nodes)


def still_ready(kube: Kube, nodes: Collection[str]) -> list[str]:
    """Warnings for nodes that are still Ready (alive): a rebuild of a live node is unusual."""
    from adapters.errors import NotFound
    from adapters.kubernetes import nodes as k8s_nodes

    warnings = []
    for name in sorted(nodes):
        try:
            node = k8s_nodes.get_node(kube, name)
        except NotFound:
            continue
        if node.ready:
            warnings.append(f"warning: {name} is still Ready: its pods will be drained and its VM "
                            "stopped and destroyed. Make sure this is the node you mean.")
    return warnings

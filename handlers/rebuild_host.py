"""/dr rebuild-host <pve-host>: scenario 3, after the host's hardware was replaced and Proxmox
reinstalled, its VMs are built again by Terraform, configured by Ansible and rejoin K3s.

It is for a host whose VMs are gone: a VM of that host that still exists is refused (rebuild-node
handles a VM that exists), so this runbook never stops or destroys a machine. When the host held
enough etcd members that losing them lost quorum, it stops before anything and gives the
cluster-reset procedure instead. Longhorn volumes that had no healthy replica outside the host
lost their data with it: they are reported, each with its `/dr restore` command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adapters.errors import AdapterError, NotFound
from bot.errors import CommandError
from bot.grammar import Param
from bot.records.locks import LockKey, exclusive, free, shared
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef
from handlers import iac, preflight
from handlers.rebuild_node import (
    ANSIBLE,
    JOB_TIMEOUT,
    READY,
    REPLICAS,
    SSH,
    SSH_TIMEOUT,
    TERRAFORM,
    ansible_join,
    clean_longhorn,
    delete_nodes,
    wait_ready,
    wait_replicas,
)

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from bot.config.inventory import Inventory
    from bot.runbook import Services

DELETE, LONGHORN = "delete Nodes", "clean Longhorn"


def host_nodes(inventory: Inventory, host: str) -> list[str]:
    return [name for name, entry in inventory.nodes.items() if entry.host == host]


def locks(args: dict[str, Any], inventory: Inventory) -> list[LockKey]:
    host = str(args["host"])
    names = host_nodes(inventory, host)
    keys = [shared("cluster"), free("drill")]  # a drill running now refuses a rebuild
    if not names or any(inventory.nodes[n].role == "server" for n in names):
        keys.append(exclusive("etcd"))
    keys.append(exclusive(f"host:{host}"))
    keys += [exclusive(f"node:{n}") for n in names]
    return [*keys, exclusive("iac")]


# -- preflight ----------------------------------------------------------------------------------


def check_host_replaced(services: Services, host: str, names: list[str]) -> None:
    """The host is back in Proxmox and none of its VMs exist; none of its Nodes is alive."""
    from adapters.kubernetes import nodes

    pve = services.proxmox
    online = {n.name: n.online for n in pve.list_nodes()}
    if not online.get(host):
        state = "offline" if host in online else "not part of the Proxmox cluster"
        raise CommandError(f"Proxmox host {host} is {state}: finish reinstalling it and join it "
                           f"to the Proxmox cluster (`pvecm add`), then run this again.")
    alive = []
    for name in names:
        entry = services.inventory.nodes[name]
        try:
            vm = pve.find_vm(entry.vmid)
        except NotFound:
            continue
        alive.append(f"VM {entry.vmid} ({name}) still exists on {vm.node} ({vm.status})")
    for name in names:
        try:
            if nodes.get_node(services.kube, name).ready:
                alive.append(f"Node {name} is Ready")
        except NotFound:
            continue
    if alive:
        raise CommandError(
            f"{host} does not look replaced: {'; '.join(alive)}. /dr rebuild-host is for a host "
            "whose VMs are gone (new hardware, Proxmox reinstalled); rebuild a VM that still "
            "exists with /dr rebuild-node " + " or ".join(f"{n}" for n in names) + ".")


def check_drbot_running(kube: Kube, inventory: Inventory, names: list[str]) -> None:
    """drbot's own nodes on the host may be rebuilt only once they are dead (drbot runs
    elsewhere now: this very job proves it); a live one would be killed."""
    from adapters.kubernetes import nodes

    for name in sorted(set(names) & set(inventory.drbot_nodes)):
        try:
            if nodes.get_node(kube, name).ready:
                preflight.check_drbot(inventory, [name])
        except NotFound:
            continue


def lost_volumes(kube: Kube, names: list[str]) -> list[dict[str, str]]:
    return [{"volume": v.name, "pvc": preflight.pvc_of(v)}
            for v in preflight.volumes_lost_with(kube, names)]


def restore_lines(lost: list[dict[str, str]]) -> list[str]:
    return [f"  {item['volume']}" + (f" (PVC {item['pvc']}): /dr restore {item['pvc']}"
                                     if item["pvc"] else ": no PVC recorded; restore it from the "
                                     "Longhorn UI") for item in lost]


# -- steps --------------------------------------------------------------------------------------


def clean(step: StepContext, names: list[str]) -> dict[str, Any]:
    """clean_longhorn keeping the only copies; the volumes lost with the host are recorded
    before the first delete (a retry must still report them and not wait for them)."""
    lost = step.intent("lost", lambda: lost_volumes(step.services.kube, names))
    if lost and not step.resumed("lost"):
        iac.say(step, "data lost with the host (no healthy replica elsewhere): "
                + ", ".join(item["pvc"] or item["volume"] for item in lost))
    result = clean_longhorn(step, names, keep_last=True)
    gone = {item["volume"] for item in lost}
    return {**result, "lost": lost, "volumes": [v for v in result["volumes"] if v not in gone]}


def plan_steps(host: str, names: list[str], inventory: Inventory) -> list[StepDef]:
    entries = [inventory.nodes[n] for n in names]
    addresses = [e.terraform_address for e in entries]
    listed = ", ".join(names)
    return [
        StepDef(DELETE, lambda s: delete_nodes(s, names), listed,
                "delete each dead Node, one at a time, and wait until gone", destructive=True),
        StepDef(LONGHORN, lambda s: clean(s, names), listed,
                "delete their stale replicas and Longhorn Nodes; keep the only copies",
                destructive=True),
        StepDef(TERRAFORM, lambda s: iac.terraform_apply(s, addresses), ", ".join(addresses),
                f"create the VMs on {host} (-target, never -replace)"),
        StepDef(SSH, lambda s: {"keys": iac.wait_for_ssh(
            s, [iac.ssh_endpoint(s.inventory, n) for n in names], SSH_TIMEOUT)}, listed,
                "wait until each answers, accept their new host keys"),
        StepDef(ANSIBLE, lambda s: ansible_join(s, names), ",".join(e.ansible_host for e in entries),
                "join playbook limited to these hosts; servers join a surviving server"),
        StepDef(READY, lambda s: wait_ready(s, names), listed, "wait until every Node is Ready"),
        StepDef(REPLICAS, lambda s: wait_replicas(s, s.results.get(LONGHORN, {})
                                                  .get("volumes", [])),
                listed, "wait until the surviving volumes they held are healthy again"),
    ]


def summary(host: str, names: list[str], results: dict[str, dict[str, Any]]) -> str:
    lh, ready = results.get(LONGHORN, {}), results.get(READY, {})
    lines = [f"{host} rebuilt: {', '.join(names)} Ready (etcd {ready.get('etcd', '?')} healthy), "
             f"VM(s) created by Terraform ({iac.counted(results.get(TERRAFORM, {}), 'added')}), joined "
             f"via {results.get(ANSIBLE, {}).get('joined_via', '?')}."]
    healthy = results.get(REPLICAS, {}).get("pvcs", [])
    lines.append(f"Longhorn: {len(lh.get('deleted_replicas', []))} stale replica(s) deleted; "
                 f"healthy again: {', '.join(healthy) or '-'}.")
    for node, volumes in (lh.get("kept") or {}).items():
        lines.append(f"Longhorn node {node} kept (it holds the only copies of {', '.join(volumes)});"
                     " delete it in the Longhorn UI once those volumes are restored.")
    lost = lh.get("lost") or []
    if lost:
        lines.append(f"{len(lost)} Longhorn volume(s) lost their data with {host} (no healthy "
                     "replica elsewhere); restore each from its latest backup:")
        lines += restore_lines(lost)
    else:
        lines.append("No Longhorn volume lost its data.")
    return "\n".join(lines)


@runbook("rebuild-host",
         summary="rebuild every VM of a replaced Proxmox host and rejoin them",
         params=(Param("host", "the Proxmox host, as named in the inventory", complete="hosts"),),
         locks=locks, timeout=JOB_TIMEOUT)
def rebuild_host(ctx: PlanContext) -> Runbook:
    host = str(ctx.args["host"])
    inventory = ctx.inventory
    if host not in inventory.hosts and host not in {n.host for n in inventory.nodes.values()}:
        raise CommandError(f"{host} is not a Proxmox host of the inventory; known hosts: "
                           f"{', '.join(inventory.hosts) or 'none'}")
    names = host_nodes(inventory, host)
    if not names:
        raise CommandError(f"no K3s node of the inventory runs on {host}: nothing to rebuild")
    iac.require_iac(inventory)
    revision = iac.revision(ctx.services)
    kube, services = ctx.services.kube, ctx.services

    def check() -> None:
        # Only the steps before Terraform are destructive, so this runs while the VMs are gone.
        preflight.check_etcd(kube, inventory, names)
        check_drbot_running(kube, inventory, names)
        check_host_replaced(services, host, names)

    notes = [f"{n}: {inventory.nodes[n].role}, VM {inventory.nodes[n].vmid}" for n in names]
    try:
        lost = lost_volumes(kube, names)
    except AdapterError as exc:  # the plan is built again at every retry: never fail here
        lost = []
        notes.append(f"Longhorn volumes could not be read now: {exc}")
    if lost:
        notes.append("Longhorn volumes with no healthy replica outside this host (data lost, "
                     "to restore from backup):")
        notes += restore_lines(lost)
    own = sorted(set(names) & set(inventory.drbot_nodes))
    if own:
        notes.append(f"{', '.join(own)} ran drbot's worker or Redis; drbot runs elsewhere now")
    targets = [f"host {host}", *(f"node {n}" for n in names),
               *(f"terraform {inventory.nodes[n].terraform_address}" for n in names)]
    return Runbook(plan_steps(host, names, inventory), targets=targets, revision=revision,
                   notes=notes, preflight=check,
                   summary=lambda results: summary(host, names, results))

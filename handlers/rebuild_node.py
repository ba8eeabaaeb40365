"""/dr rebuild-node <node>: scenario 2, a dead K3s node's VM is rebuilt from Terraform and rejoins.

The steps follow DESIGN "Runbooks" exactly. Each is idempotent and decides at run time whether
anything is left for it (a retry after a partial run or a worker death resumes safely): the
Terraform step never replaces, so a retry after it succeeded changes nothing; the VM is found by
its inventory id *and* checked by name before it is stopped or destroyed. The destructive steps
are marked so the runner re-runs the preflight (preflight.py) right before each of them.

The node-lifecycle steps here (delete Nodes, clean Longhorn, wait for Ready and for replicas) take
lists of nodes so that rebuild-host reuses them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from adapters.errors import AdapterError, Cancelled, NotFound, Refused, TimedOut
from bot.errors import CommandError
from bot.grammar import Param
from bot.records.locks import LockKey, exclusive, free, shared
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef
from handlers import iac, preflight

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from adapters.proxmox.vms import VM
    from bot.config.inventory import Inventory, Node

# Upper bounds sized for real hardware; every wait ends as soon as its condition holds.
DRAIN_TIMEOUT = 600.0
STOP_TIMEOUT = 180.0
DELETE_TIMEOUT = 600.0
LONGHORN_TIMEOUT = 300.0
DESTROY_TIMEOUT = 600.0
SSH_TIMEOUT = 900.0
READY_TIMEOUT = 900.0
REPLICAS_TIMEOUT = 3600.0
JOB_TIMEOUT = 4 * 3600
POLL = 0.5  # Kubernetes reads while waiting: one small GET, cheap enough at this pace
REPLICA_POLL = 1.0

CORDON, DRAIN, FENCE, DELETE, LONGHORN = ("cordon", "drain", "stop VM", "delete Node",
                                          "clean Longhorn")
DESTROY, TERRAFORM, SSH, ANSIBLE, READY, REPLICAS = ("destroy VM", "terraform apply",
                                                      "wait for SSH", "ansible join",
                                                      "wait for Ready", "wait for replicas")


# -- locks --------------------------------------------------------------------------------------


def locks(args: dict[str, Any], inventory: Inventory) -> list[LockKey]:
    name = str(args["node"])
    entry = inventory.nodes.get(name)
    keys = [shared("cluster"), free("drill")]  # a drill running now refuses a rebuild
    if entry is None or entry.role == "server":  # unknown: assume the worst until planning refuses
        keys.append(exclusive("etcd"))
    keys.append(exclusive(f"node:{name}"))
    if entry is not None:
        keys.append(shared(f"host:{entry.host}"))
    return [*keys, exclusive("iac")]


# -- VMs ----------------------------------------------------------------------------------------


def vm_label(entry: Node) -> str:
    return f"VM {entry.vmid} on {entry.host}"


def find_vm(step: StepContext, name: str) -> VM | None:
    """The node's VM by its inventory id, None when it no longer exists; refuses a stranger."""
    entry = step.inventory.nodes[name]
    try:
        vm = step.services.proxmox.find_vm(entry.vmid)
    except NotFound:
        return None
    if vm.name and vm.name != name:
        raise CommandError(f"VM {entry.vmid} is named {vm.name!r}, not {name!r}: the inventory's "
                           f"vmid for {name} looks wrong, so nothing was touched. Fix "
                           f"nodes.{name}.vmid in the inventory, then /dr retry.")
    return vm


def vm_before_fence(step: StepContext, name: str) -> dict[str, Any]:
    """The VM as the fence found it; a running one's SSH host key is pinned for the job."""
    vm = find_vm(step, name)
    running = vm is not None and vm.status == "running"
    old_key = iac.pin_host_key(step, iac.ssh_endpoint(step.inventory, name)) if running else []
    return {"exists": vm is not None, "running": running, "old_key": old_key,
            "on": vm.node if vm else ""}


def fence(step: StepContext, name: str) -> dict[str, Any]:
    """Stop the VM hard, so the old machine cannot come back; remember its SSH host key.

    Whether it was running and its old key come from the intent record: a retry after the stop
    finds it stopped and would otherwise report that nothing was stopped and no key known."""
    entry = step.inventory.nodes[name]
    before = step.intent("vm", lambda: vm_before_fence(step, name))
    vm = find_vm(step, name)
    if vm is None:
        if not before["exists"]:
            iac.say(step, f"{vm_label(entry)} does not exist: nothing to stop", name)
        return {"vm": "absent", "stopped": False, "old_key": before["old_key"]}
    step.services.proxmox.stop_vm(vm.node, entry.vmid, timeout=STOP_TIMEOUT,
                                  hooks=iac.timed(step, vm_label(entry)))
    return {"vm": f"VM {entry.vmid} on {vm.node}", "stopped": before["running"],
            "old_key": before["old_key"]}


def destroy(step: StepContext, name: str) -> dict[str, Any]:
    """Destroy the VM; "destroyed" is true when it existed as the step began, in any attempt."""
    entry = step.inventory.nodes[name]
    before = step.intent("vm", lambda: {"exists": find_vm(step, name) is not None})
    vm = find_vm(step, name)
    if vm is None:
        if not before["exists"]:
            iac.say(step, f"{vm_label(entry)} is already gone: nothing to destroy", name)
        return {"destroyed": before["exists"], "vm": vm_label(entry)}
    step.services.proxmox.destroy_vm(vm.node, entry.vmid, timeout=DESTROY_TIMEOUT,
                                     hooks=iac.timed(step, vm_label(entry)))
    return {"destroyed": True, "vm": f"VM {entry.vmid} on {vm.node}"}


# -- Kubernetes nodes ---------------------------------------------------------------------------


def cordon(step: StepContext, name: str) -> dict[str, Any]:
    from adapters.kubernetes import nodes

    try:
        node = nodes.cordon(step.services.kube, name)
    except NotFound:
        iac.say(step, f"Node {name} is already gone: nothing to cordon", name)
        return {"cordoned": False}
    return {"cordoned": True, "was_ready": node.ready}


def drain(step: StepContext, name: str) -> dict[str, Any]:
    """Evict the pods only from a Ready node (a dead node's pods cannot be evicted gracefully)."""
    from adapters.kubernetes import nodes

    kube = step.services.kube
    try:
        node = nodes.get_node(kube, name)
    except NotFound:
        return {"skipped": "the Node is gone"}
    if not node.ready:
        iac.say(step, f"{name} is not Ready: drain skipped (its pods go when the Node is deleted)",
                name)
        return {"skipped": "the Node is not Ready"}
    evicted = nodes.drain(kube, name, timeout=DRAIN_TIMEOUT, hooks=iac.timed(step, name),
                          poll=POLL)
    return {"evicted": len(evicted)}


MEMBER_LIST = ("on a surviving server run `etcdctl --cacert "
               "/var/lib/rancher/k3s/server/tls/etcd/server-ca.crt --cert "
               "/var/lib/rancher/k3s/server/tls/etcd/client.crt --key "
               "/var/lib/rancher/k3s/server/tls/etcd/client.key member list`")


def refuse_etcd_gap(node: Any) -> None:
    """A server Node whose deletion would leave its etcd member behind is not deleted."""
    gap = node.etcd_removal_gap()
    if gap:
        raise CommandError(
            f"Node {node.name} is an etcd server but lacks {gap}: K3s removes a server's etcd "
            "member only through that finalizer, by that name, so deleting the Node would leave "
            f"the member in etcd (and a later quorum count wrong). Remove the member by hand "
            f"({MEMBER_LIST}, then `etcdctl member remove <id>`), delete the Node, and run "
            f"/dr rebuild-node {node.name} --member-gone")


def gone_server_note(name: str) -> str:
    return (f"Node {name} (an etcd server) is already gone, so drbot cannot know that K3s removed "
            f"its etcd member: {MEMBER_LIST}, check that no member of {name} is listed (else "
            f"`etcdctl member remove <id>`), then run /dr rebuild-node {name} --member-gone")


def delete_nodes(step: StepContext, names: list[str], confirmed: bool = False
                 ) -> dict[str, Any]:
    """Delete each Node and wait until it is gone, one at a time (K3s removes a server's etcd
    member in the Node's finalizer, and etcd must remove members one by one). A server Node
    already gone needs ``confirmed``: its member may still be in etcd."""
    from adapters.kubernetes import nodes

    def present() -> list[str]:
        return [n for n in names if n in {node.name for node in nodes.list_nodes(
            step.services.kube)}]
    existed = step.intent("nodes", present)
    for name in names:
        try:
            node = nodes.get_node(step.services.kube, name)
        except NotFound:
            if name not in existed:  # gone before this job: K3s may have kept its member
                entry = step.inventory.nodes.get(name)
                if entry is not None and entry.role == "server" and not confirmed:
                    raise CommandError(gone_server_note(name)) from None
                iac.say(step, f"Node {name} is already gone", name)
            continue
        refuse_etcd_gap(node)
        nodes.delete_node(step.services.kube, name, wait_timeout=DELETE_TIMEOUT,
                          hooks=iac.timed(step, name), poll=POLL)
    return {"deleted": existed}


def wait_ready(step: StepContext, names: list[str]) -> dict[str, Any]:
    from adapters.kubernetes import nodes

    for name in names:
        nodes.wait_ready(step.services.kube, name, timeout=READY_TIMEOUT,
                         hooks=iac.timed(step, name), poll=POLL)
    view = preflight.etcd_view(step.services.kube)
    return {"ready": names, "etcd": f"{len(view.healthy)}/{view.size}"}


def join_server(kube: Kube, inventory: Inventory, rebuilding: list[str]) -> str:
    """A Ready server that is not being rebuilt (inventory order), for nodes to join."""
    view = preflight.etcd_view(kube)
    for name, entry in inventory.nodes.items():
        if entry.role == "server" and name not in rebuilding and name in view.healthy:
            return name
    raise CommandError(f"no Ready K3s server is left to join (etcd members: "
                       f"{preflight.names(view.members)}); see /dr status, and the "
                       "cluster-reset procedure if every server is down")


def ansible_join(step: StepContext, names: list[str]) -> dict[str, Any]:
    inventory = step.inventory
    iac_section = iac.require_iac(inventory)
    survivor = join_server(step.services.kube, inventory, names)
    hosts = [inventory.nodes[n].ansible_host for n in names]
    try:
        result = iac.run_playbook(step, iac_section.ansible.join_playbook, hosts,
                                  iac.join_extravars(inventory, survivor), reset=hosts)
    except AdapterError as exc:
        if "node password" not in str(exc).lower():
            raise
        secrets = " ".join(f"{n}.node-password.k3s" for n in names)
        raise AdapterError(f"{exc}. K3s still holds the old machine's node password: check that "
                        f"no other machine uses the name, then `kubectl -n kube-system delete "
                        f"secret {secrets}`") from None
    return {**result, "joined_via": survivor}


# -- Longhorn -----------------------------------------------------------------------------------


def clean_longhorn(step: StepContext, names: list[str], *, keep_last: bool = False
                   ) -> dict[str, Any]:
    """Delete the nodes' failed replicas that have a healthy copy elsewhere and their Longhorn
    Node objects (domain.md §2.7). With ``keep_last``, a node holding the only copy of a volume
    is left as it is and reported, instead of failing the step.

    The volumes that had a replica on the nodes (what "wait for replicas" must see healthy
    again), the replicas and the Longhorn Nodes are recorded before the first delete: a retry
    after a delete no longer sees the deleted replica, and so would forget its volume."""
    from adapters.kubernetes import longhorn

    kube = step.services.kube
    before = step.intent("longhorn", lambda: longhorn_before(kube, names))
    kept: dict[str, list[str]] = {}
    for name in names:
        try:
            _clean_one(step, name)
        except Refused as exc:
            if not keep_last:
                raise
            kept[name] = [preflight.describe_volume(v)
                          for v in preflight.volumes_lost_with(kube, [name])]
            iac.say(step, f"Longhorn node {name} kept: {exc}", name)
            continue
    left = {r.name for r in longhorn.list_replicas(kube)}
    nodes_now = longhorn.node_names(kube)
    return {"volumes": before["volumes"],
            "deleted_replicas": [r for r in before["replicas"] if r not in left],
            "nodes_removed": [n for n in before["nodes"] if n not in nodes_now],
            "kept": kept}


def longhorn_before(kube: Kube, names: list[str]) -> dict[str, list[str]]:
    """What clean_longhorn is about to act on: volumes and replicas on ``names``, Longhorn Nodes."""
    from adapters.kubernetes import longhorn

    on = [r for r in longhorn.list_replicas(kube) if r.node in names]
    return {"volumes": sorted({r.volume for r in on}), "replicas": sorted(r.name for r in on),
            "nodes": sorted(set(names) & longhorn.node_names(kube))}


def _clean_one(step: StepContext, name: str) -> Any:
    """clean_dead_node, retried while Longhorn catches up with the deleted Node (its engines move
    and its Node turns KubernetesNodeGone a moment after the Kubernetes Node is gone)."""
    from adapters.kubernetes import longhorn

    deadline = time.monotonic() + LONGHORN_TIMEOUT
    while True:
        try:
            return longhorn.clean_dead_node(step.services.kube, name, iac.timed(step, name),
                                            timeout=LONGHORN_TIMEOUT, poll=POLL)
        except (Refused, TimedOut, Cancelled):
            raise
        except AdapterError as exc:  # Conflict (engines still there), webhook refusal, Unreachable
            if time.monotonic() > deadline or step.cancelled():
                raise
            iac.say(step, f"Longhorn not ready to let go of {name} yet: {exc}", name)
            time.sleep(POLL)


def wait_replicas(step: StepContext, volumes: list[str]) -> dict[str, Any]:
    """Wait until the attached ones of ``volumes`` are healthy with all their replicas."""
    from adapters.kubernetes import longhorn

    kube = step.services.kube
    current = {v.name: v for v in longhorn.list_volumes(kube)}
    attached = [v for v in volumes if v in current and current[v].state == "attached"]
    detached = [v for v in volumes if v in current and current[v].state != "attached"]
    if detached:
        names = ", ".join(longhorn.label(current[v]) for v in detached)  # as people know them
        iac.say(step, f"detached volume(s) {names} rebuild their replicas when next attached")
    if not attached:
        return {"healthy": [], "detached": detached}
    healthy = longhorn.wait_replicas_healthy(kube, attached, timeout=REPLICAS_TIMEOUT,
                                             poll=REPLICA_POLL, hooks=iac.timed(step))
    return {"healthy": [v.name for v in healthy], "detached": detached,
            "pvcs": [preflight.pvc_of(v) or v.name for v in healthy]}


# -- the runbook --------------------------------------------------------------------------------


def observe(ctx: PlanContext, name: str, entry: Node) -> dict[str, str]:
    """Live state for the plan's descriptions (never part of the digest); never fails, since the
    runbook is built again at every retry."""
    from adapters.kubernetes import longhorn, nodes

    seen: dict[str, str] = {}
    try:
        node = nodes.get_node(ctx.services.kube, name)
        seen["node"] = "Ready" if node.ready else f"NotReady ({node.ready_reason or 'unknown'})"
    except NotFound:
        seen["node"] = "absent"
    except AdapterError as exc:  # a retry must not be refused for a blink of the API
        seen["node"] = f"unknown ({str(exc)[:120]})"
    try:
        vm = ctx.services.proxmox.find_vm(entry.vmid)
        seen["vm"] = f"{vm.status} on {vm.node}" + ("" if vm.name in ("", name)
                                                   else f", named {vm.name}!")
    except NotFound:
        seen["vm"] = "absent"
    except AdapterError as exc:
        seen["vm"] = f"unknown ({str(exc)[:120]})"
    try:
        replicas = [r for r in longhorn.list_replicas(ctx.services.kube) if r.node == name]
        seen["replicas"] = (f"{len(replicas)} replica(s) of {len({r.volume for r in replicas})} "
                            "volume(s)")
    except AdapterError as exc:
        seen["replicas"] = f"replicas (unknown now: {str(exc)[:120]})"
    return seen


def plan_steps(name: str, entry: Node, seen: dict[str, str], confirmed: bool = False
               ) -> list[StepDef]:
    node, vm = f"node {name}", vm_label(entry)
    ready = seen["node"] == "Ready"
    ssh = f"{entry.ssh_address or entry.ansible_host}:{entry.ssh_port}"
    join = "a Ready server (never --cluster-init)" if entry.role == "server" else "a Ready server"
    return [
        StepDef(CORDON, lambda s: cordon(s, name), node, f"mark unschedulable (Node is "
                f"{seen['node']})"),
        StepDef(DRAIN, lambda s: drain(s, name), node,
                "evict pods" if ready else f"skipped: the Node is {seen['node']}"),
        StepDef(FENCE, lambda s: fence(s, name), vm, f"stop it hard (now {seen['vm']})",
                destructive=True),
        StepDef(DELETE, lambda s: delete_nodes(s, [name], confirmed), node,
                "delete the Node, wait until gone" + (" (K3s removes its etcd member)"
                                                      if entry.role == "server" else ""),
                destructive=True),
        StepDef(LONGHORN, lambda s: clean_longhorn(s, [name]), node,
                f"delete its {seen['replicas']}, then its Longhorn Node", destructive=True),
        StepDef(DESTROY, lambda s: destroy(s, name), vm, "destroy with its disks",
                destructive=True),
        StepDef(TERRAFORM, lambda s: iac.terraform_apply(s, [entry.terraform_address]),
                entry.terraform_address, "create the VM again (-target, never -replace)"),
        StepDef(SSH, lambda s: {"keys": iac.wait_for_ssh(
            s, [iac.ssh_endpoint(s.inventory, name)], SSH_TIMEOUT)}, ssh,
                "wait until it answers, accept its new host key"),
        StepDef(ANSIBLE, lambda s: ansible_join(s, [name]), entry.ansible_host,
                f"join playbook limited to {entry.ansible_host}, joining {join}"),
        StepDef(READY, lambda s: wait_ready(s, [name]), node, "wait until the Node is Ready"),
        StepDef(REPLICAS, lambda s: wait_replicas(s, s.results.get(LONGHORN, {})
                                                  .get("volumes", [])),
                node, "wait until the volumes it held are healthy again"),
    ]


def summary(name: str, entry: Node, results: dict[str, dict[str, Any]]) -> str:
    fenced, lh = results.get(FENCE, {}), results.get(LONGHORN, {})
    tf, ready = results.get(TERRAFORM, {}), results.get(READY, {})
    new_key = results.get(SSH, {}).get("keys", {}).get(name, [])
    lines = [f"{name} rebuilt and Ready ({entry.role}; etcd {ready.get('etcd', '?')} healthy)."]
    lines.append(f"VM {entry.vmid}: {'stopped, ' if fenced.get('stopped') else ''}"
                 f"{'destroyed' if results.get(DESTROY, {}).get('destroyed') else 'was gone'}, "
                 f"created by Terraform on {entry.host} ({iac.counted(tf, 'added')}).")
    lines.append(f"Longhorn: {len(lh.get('deleted_replicas', []))} stale replica(s) deleted, "
                 f"Node object {'removed' if lh.get('nodes_removed') else 'already gone'}; "
                 f"healthy again: {', '.join(results.get(REPLICAS, {}).get('pvcs', [])) or '-'}.")
    joined = results.get(ANSIBLE, {}).get("joined_via", "?")
    lines.append(f"Joined via {joined}.")
    old = fenced.get("old_key", [])
    if new_key and old and set(new_key) != set(old):
        known = iac.node_endpoint(name, entry).known_name
        lines.append(f"SSH host key changed: {', '.join(old)} -> {', '.join(new_key)}; run "
                     f"`ssh-keygen -R '{known}'` where you keep a known_hosts.")
    elif new_key:
        lines.append(f"SSH host key now {', '.join(new_key)}.")
    return "\n".join(lines)


@runbook("rebuild-node",
         summary="rebuild a dead K3s node: fence, remove, recreate its VM, rejoin",
         params=(Param("node", "the K3s node, as named in the inventory", complete="nodes"),
                 Param("member-gone", "a server whose Node is gone: its etcd member is gone too "
                       "(checked with etcdctl member list)", flag=True, boolean=True,
                       required=False)),
         locks=locks, timeout=JOB_TIMEOUT)
def rebuild_node(ctx: PlanContext) -> Runbook:
    name = str(ctx.args["node"])
    entry = iac.inventory_node(ctx.inventory, name)
    iac.require_iac(ctx.inventory)
    revision = iac.revision(ctx.services)
    seen = observe(ctx, name, entry)
    kube, inventory = ctx.services.kube, ctx.inventory

    def check() -> None:
        preflight.check_nodes(kube, inventory, [name])

    confirmed = bool(ctx.args.get("member-gone"))
    notes = preflight.still_ready(kube, [name])
    if seen["node"] == "absent" and entry.role == "server":  # a note only: a retry sees it too
        notes.append(f"Node {name} is gone; you confirmed its etcd member is gone too"
                     if confirmed else gone_server_note(name) + " (the delete step stops "
                     "without it)")
    if seen["vm"].startswith(("running", "stopped")) and not seen["vm"].endswith(entry.host):
        notes.append(f"VM {entry.vmid} is {seen['vm']}, not on {entry.host} as the inventory "
                     f"says; Terraform will create it on {entry.host}")
    targets = [f"node {name}", vm_label(entry), f"terraform {entry.terraform_address}"]
    return Runbook(plan_steps(name, entry, seen, confirmed), targets=targets, revision=revision,
                   notes=notes, preflight=check,
                   summary=lambda results: summary(name, entry, results))

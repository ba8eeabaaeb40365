"""`drbot inventory import`: a draft of the inventory's `hosts` and `nodes` from what already
describes the homelab: Terraform's state (`terraform show -json`: each VM's address, vmid, name
and Proxmox node), Ansible's inventory (`ansible-inventory --list`: hosts, groups, connection
variables) and the live cluster (each Node's role). What cannot be decided is said, never
guessed silently: a node in only one source, a role nobody states, an SSH address Ansible does
not give."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# (resource type, name field, vmid field, Proxmox node field): bpg/proxmox and Telmate/proxmox.
VM_TYPES = {"proxmox_virtual_environment_vm": ("name", "vm_id", "node_name"),
            "proxmox_vm_qemu": ("name", "vmid", "target_node")}
SERVER_WORDS = ("server", "master", "control")
AGENT_WORDS = ("agent", "worker")


@dataclass(frozen=True)
class Vm:
    address: str
    vmid: int
    host: str


@dataclass
class Draft:
    hosts: list[str]
    nodes: dict[str, dict[str, Any]]
    undecided: list[str] = field(default_factory=list)

    def as_inventory(self) -> dict[str, Any]:
        return {"hosts": self.hosts, "nodes": self.nodes}


def _resources(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from module.get("resources") or []
    for child in module.get("child_modules") or []:
        yield from _resources(child)


def vms(show: dict[str, Any]) -> dict[str, Vm]:
    """VM name -> its Terraform address, vmid and Proxmox node (``show -json`` format 0.x/1.x:
    ``values.root_module.resources`` and nested ``child_modules``)."""
    out = {}
    root = (show.get("values") or {}).get("root_module") or {}
    for resource in _resources(root):
        fields = VM_TYPES.get(str(resource.get("type")))
        if resource.get("mode") != "managed" or fields is None:
            continue
        values = resource.get("values") or {}
        name, vmid, host = (values.get(f) for f in fields)
        if name and vmid is not None and host:
            out[str(name)] = Vm(str(resource["address"]), int(vmid), str(host))
    return out


def ansible_hosts(listing: dict[str, Any]) -> dict[str, tuple[set[str], dict[str, Any]]]:
    """Host -> (its groups, its variables) from ``ansible-inventory --list``."""
    groups: dict[str, set[str]] = {}

    def walk(group: str, seen: tuple[str, ...]) -> None:
        entry = listing.get(group) or {}
        for host in entry.get("hosts") or []:
            groups.setdefault(host, set()).update((*seen, group))
        for child in entry.get("children") or []:
            if child not in seen:
                walk(child, (*seen, group))

    walk("all", ())
    hostvars = (listing.get("_meta") or {}).get("hostvars") or {}
    return {host: (groups.get(host, set()) - {"all", "ungrouped"}, dict(hostvars.get(host) or {}))
            for host in set(groups) | set(hostvars)}


def _group_role(groups: set[str]) -> str | None:
    server = any(w in g.lower() for g in groups for w in SERVER_WORDS)
    agent = any(w in g.lower() for g in groups for w in AGENT_WORDS)
    return "server" if server and not agent else "agent" if agent and not server else None


def draft(machines: dict[str, Vm], hosts: dict[str, tuple[set[str], dict[str, Any]]],
          kube_roles: dict[str, str] | None) -> Draft:
    """Match the three sources by name (VM name = Ansible host = Node name)."""
    out = Draft(sorted({vm.host for vm in machines.values()}), {})
    for name in sorted(set(machines) | set(kube_roles or {})):
        vm = machines.get(name)
        if vm is None:
            out.undecided.append(f"{name}: a Kubernetes Node with no VM in the Terraform state; "
                                 "add it by hand (host, vmid, terraform_address)")
            continue
        groups, hostvars = hosts.get(name, (set(), {}))
        if name not in hosts:
            out.undecided.append(f"{name}: not in the Ansible inventory; set ansible_host")
        role = (kube_roles or {}).get(name) or _group_role(groups)
        if role is None:
            out.undecided.append(f"{name}: role unknown (no Kubernetes Node, Ansible groups "
                                 f"{sorted(groups) or 'none'}); set role: server or agent")
        node: dict[str, Any] = {"host": vm.host, "vmid": vm.vmid, "role": role or "agent",
                                "cluster_init": bool(hostvars.get("k3s_cluster_init", False)),
                                "terraform_address": vm.address, "ansible_host": name}
        address = hostvars.get("ansible_host")
        port = hostvars.get("ansible_port") or hostvars.get("ansible_ssh_port")
        if address:
            node["ssh_address"] = str(address)
        if port:
            node["ssh_port"] = int(port)
        if not address or not port:
            missing = [k for k, v in (("ssh_address", address), ("ssh_port", port)) if not v]
            out.undecided.append(f"{name}: {' and '.join(missing)}: Ansible gives no "
                                 f"{'ansible_host' if not address else 'ansible_port'} "
                                 f"(connection {hostvars.get('ansible_connection', 'ssh')}); "
                                 "set them if SSH reaches it elsewhere than "
                                 f"{address or name}:{port or 22}")
        out.nodes[name] = node
    if kube_roles is None:
        out.undecided.append("the cluster could not be read: roles come from Ansible's groups")
    servers = [n for n, v in out.nodes.items() if v["role"] == "server"]
    if servers and not any(out.nodes[n]["cluster_init"] for n in servers):
        out.undecided.append("no server has k3s_cluster_init in Ansible; set cluster_init: true "
                             "on the one that first ran --cluster-init")
    for name in sorted(set(hosts) - set(machines)):
        out.undecided.append(f"{name}: an Ansible host with no VM in the Terraform state; left "
                             "out")
    return out

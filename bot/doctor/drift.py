"""Drift: the inventory against the systems it describes. Every node is a VM with that vmid and
name on that Proxmox host, a Kubernetes Node with that role, and a resource at its Terraform
address in the state; every Longhorn volume and CNPG cluster is backed up on a schedule, or
excluded in the inventory's backup policy on purpose."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.doctor.result import Line, System, fail, guarded, ok
from bot.watch import rules

if TYPE_CHECKING:
    from adapters.kubernetes.nodes import KubeNode
    from adapters.proxmox.vms import VM
    from bot.config.inventory import Inventory
    from bot.worker.services import Services

DRIFT = System.DRIFT


def _vm_line(inventory: Inventory, name: str, find: Callable[[int], VM]) -> Line:
    from adapters.errors import NotFound

    node = inventory.nodes[name]
    subject = f"vm {name}"
    try:
        vm = find(node.vmid)
    except NotFound:
        return fail(DRIFT, subject, f"no VM {node.vmid} in Proxmox",
                    f"fix nodes.{name}.vmid (see `qm list` on {node.host}), or rebuild it with "
                    f"/dr rebuild-node {name}")
    if vm.name != name:
        return fail(DRIFT, subject, f"vmid {node.vmid} is the VM named {vm.name!r} on "
                    f"{vm.node}", f"fix nodes.{name}.vmid: it names another VM")
    if vm.node != node.host:
        return fail(DRIFT, subject, f"VM {node.vmid} runs on {vm.node}, the inventory says "
                    f"{node.host}", f"set nodes.{name}.host: {vm.node} (or migrate it back)")
    return ok(DRIFT, subject, f"VM {node.vmid} {vm.name} on {vm.node}")


def vm_lines(services: Services, inventory: Inventory) -> list[Line]:
    if inventory.proxmox is None or not inventory.nodes:
        return []
    return guarded(DRIFT, "vms", "see the proxmox lines", lambda: [
        _vm_line(inventory, name, services.proxmox.find_vm) for name in sorted(inventory.nodes)])


def _role(node: KubeNode) -> str:
    return "server" if node.etcd or "control-plane" in node.roles else "agent"


def kube_lines(services: Services, inventory: Inventory) -> list[Line]:
    from adapters.kubernetes.nodes import list_nodes

    def check() -> list[Line]:
        live = {n.name: n for n in list_nodes(services.kube)}
        lines = []
        for name, node in sorted(inventory.nodes.items()):
            subject = f"node {name}"
            if name not in live:
                lines.append(fail(DRIFT, subject, "no such Kubernetes Node",
                                  f"rebuild it (/dr rebuild-node {name}) or remove it from the "
                                  "inventory"))
            elif _role(live[name]) != node.role:
                lines.append(fail(DRIFT, subject, f"is a K3s {_role(live[name])}, the "
                                  f"inventory says {node.role}",
                                  f"set nodes.{name}.role: {_role(live[name])}"))
            else:
                lines.append(ok(DRIFT, subject, f"Kubernetes Node, {node.role}"))
        for name in sorted(set(live) - set(inventory.nodes)):
            lines.append(fail(DRIFT, f"node {name}", "a Kubernetes Node the inventory lacks",
                              f"add nodes.{name} (`drbot inventory import` drafts it)"))
        return lines

    return guarded(DRIFT, "nodes", "see the kubernetes lines", check) if inventory.nodes else []


def terraform_lines(services: Services, inventory: Inventory) -> list[Line]:
    from adapters import terraform_state

    if inventory.iac is None or not inventory.nodes:
        return []

    def check() -> list[Line]:
        addresses = set(terraform_state.state_addresses(services.terraform))
        lines = []
        for name, node in sorted(inventory.nodes.items()):
            subject = f"terraform {name}"
            if node.terraform_address in addresses:
                lines.append(ok(DRIFT, subject, f"{node.terraform_address} in the state"))
            else:
                lines.append(fail(DRIFT, subject, f"{node.terraform_address} is not in the "
                                  "Terraform state", f"fix nodes.{name}.terraform_address (see "
                                  "`terraform state list`), or import the VM into the state"))
        return lines

    return guarded(DRIFT, "terraform", "see the iac lines", check)


def backup_lines(services: Services, inventory: Inventory) -> list[Line]:
    from adapters.kubernetes import cnpg
    from adapters.kubernetes.longhorn.recurring import backup_jobs_by_volume

    backups = inventory.backups

    def longhorn() -> list[Line]:
        lines = []
        for volume, jobs in sorted(backup_jobs_by_volume(services.kube).items()):
            if not jobs and not rules.excluded(backups, "longhorn", [volume]):
                lines.append(fail(DRIFT, f"longhorn {volume}", "no recurring backup job covers "
                                  "it", "label it recurring-job.longhorn.io/<backup job>="
                                  "enabled (or a group of one), or add it to "
                                  "backups.longhorn.exclude if it needs no backup"))
        return lines or [ok(DRIFT, "longhorn volumes", "every volume has a recurring backup "
                                                       "job or is excluded")]

    def clusters() -> list[Line]:
        scheduled = {(s.namespace, s.cluster) for s in cnpg.list_scheduled_backups(services.kube)
                     if not s.suspended}
        lines = []
        for c in cnpg.list_clusters(services.kube):
            names = [f"{c.namespace}/{c.name}", c.name]
            if (c.namespace, c.name) not in scheduled and \
                    not rules.excluded(backups, "cnpg", names):
                lines.append(fail(DRIFT, f"cnpg {c.namespace}/{c.name}", "no active "
                                  "ScheduledBackup names it", "create a ScheduledBackup for it, "
                                  "or add it to backups.cnpg.exclude if it needs no backup"))
        return lines or [ok(DRIFT, "cnpg clusters", "every cluster has a ScheduledBackup or is "
                                                    "excluded")]

    return (guarded(DRIFT, "longhorn volumes", "see the kubernetes lines", longhorn)
            + guarded(DRIFT, "cnpg clusters", "see the kubernetes lines", clusters))


def check(services: Services, inventory: Inventory, blocked: frozenset[System] = frozenset()
          ) -> list[Line]:
    """``blocked``: systems drift cannot read (their own check is red already: a bad token, no
    endpoint answers, an unreadable state); comparing against them would repeat that failure."""
    lines = []
    if System.PROXMOX not in blocked:
        lines += vm_lines(services, inventory)
    if System.KUBERNETES not in blocked:
        lines += kube_lines(services, inventory)
    if System.IAC not in blocked:
        lines += terraform_lines(services, inventory)
    if System.KUBERNETES not in blocked:
        lines += backup_lines(services, inventory)
    return lines

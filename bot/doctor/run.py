"""Run every check of the doctor, in the order a new user fixes things: reach the cluster, then
Proxmox, the stores, the nodes over SSH, the IaC checkout, and last the drift between them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.doctor import drift, iac, kubernetes, objectstores, proxmox, ssh
from bot.doctor.result import Line, System

if TYPE_CHECKING:
    from bot.worker.services import Services


def check_all(services: Services) -> list[Line]:
    settings, inventory = services.settings, services.inventory
    lines = (kubernetes.check(settings, inventory) + proxmox.check(services, inventory)
             + objectstores.check(services, inventory) + ssh.check(inventory)
             + iac.check(services, inventory))
    return lines + drift.check(services, inventory, blocked(lines))


def blocked(lines: list[Line]) -> frozenset[System]:
    """Systems drift cannot read: no Kubernetes endpoint answers, the Proxmox token is refused,
    the Terraform state does not read."""
    out = set()
    endpoints = [line for line in lines if line.system is System.KUBERNETES
                 and line.subject.startswith(("endpoint", "API"))]
    if endpoints and all(line.red for line in endpoints):
        out.add(System.KUBERNETES)
    if any(line.red and line.system is System.PROXMOX and line.subject.startswith("token")
           for line in lines):
        out.add(System.PROXMOX)
    if any(line.red and line.system is System.IAC and line.subject == "terraform state"
           for line in lines):
        out.add(System.IAC)
    return frozenset(out)


def report(lines: list[Line]) -> str:
    from bot.doctor.result import summary

    return "\n".join([*(line.render() for line in lines), summary(lines)])

"""Run every check of the doctor, in the order a new user fixes things: reach the cluster, then
Proxmox, the stores, the nodes over SSH, the IaC checkout and Terraform's own Proxmox login, and
last the drift between them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.doctor import drift, iac, kubernetes, objectstores, proxmox, ssh, terraform_proxmox
from bot.doctor.result import Line, System

if TYPE_CHECKING:
    from bot.worker.services import Services


def check_all(services: Services) -> list[Line]:
    settings, inventory = services.settings, services.inventory
    lines = (kubernetes.check(settings, inventory) + proxmox.check(services, inventory)
             + objectstores.check(services, inventory) + ssh.check(inventory)
             + iac.check(services, inventory) + terraform_proxmox.check(services, inventory))
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
    """Every line (the CLI)."""
    from bot.doctor.result import summary

    return "\n".join([*(line.render() for line in lines), summary(lines)])


def brief(lines: list[Line]) -> str:
    """For a chat thread: one line per system, then each red line with its fix in full."""
    from bot.doctor.result import ICONS, Status, summary

    out = []
    for system in System:
        mine = [line for line in lines if line.system is system]
        if not mine:
            continue
        reds = sum(1 for line in mine if line.red)
        greens = sum(1 for line in mine if line.status is Status.OK)
        icon = ICONS[Status.FAIL if reds else Status.OK if greens else Status.SKIP]
        out.append(f"{icon} {system.value}: {greens} green" + (f", {reds} red" if reds else ""))
    out += [line.render() for line in lines if line.red]
    return "\n".join([*out, summary(lines)])


def run_and_record(services: Services) -> dict[str, object]:
    """The worker's run (`/dr doctor`, the daily doctor-check): check everything, then feed the
    lines to the alert state machine. Returns the report, the red count and the alerts raised."""
    import time

    from bot.doctor import red_alerts
    from bot.records.signing import Signer
    from bot.runtime import connect

    lines = check_all(services)
    events = red_alerts.record(connect(services.settings, patient=True), lines, time.time(),
                           services.inventory.backups.reminder_hours,
                           Signer(services.settings.key()))
    return {"text": brief(lines), "red": sum(1 for line in lines if line.red),
            "alerts": len(events)}

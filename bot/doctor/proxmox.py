"""Proxmox VE: the API token is valid over verified TLS, and holds the privileges the runbooks
use on the paths they use them. The privileges are those PVE's API schema requires for drbot's
calls (pve-manager's API description, as fakepve ships it): VM.Audit to find and read a VM,
VM.PowerMgmt to stop it (``POST …/status/stop``), VM.Allocate to destroy it (``DELETE
/nodes/{node}/qemu/{vmid}``), all on ``/vms/{vmid}``; Sys.Audit on ``/`` for the quorum check
(``GET /cluster/status``). Creating VMs is Terraform's, with its own token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.doctor.result import Line, System, fail, guarded, ok, skip

if TYPE_CHECKING:
    from bot.config.inventory import Inventory
    from bot.worker.services import Services

PVE = System.PROXMOX
VM_PRIVILEGES = ("VM.Audit", "VM.PowerMgmt", "VM.Allocate")
ROOT_PRIVILEGES = ("Sys.Audit",)


def wanted(inventory: Inventory) -> dict[str, tuple[str, ...]]:
    """Path -> privileges needed there."""
    paths: dict[str, tuple[str, ...]] = {"/": ROOT_PRIVILEGES}
    for node in inventory.nodes.values():
        paths[f"/vms/{node.vmid}"] = VM_PRIVILEGES
    return paths


def check(services: Services, inventory: Inventory) -> list[Line]:
    from adapters.proxmox import access

    pve = inventory.proxmox
    if pve is None:
        return [skip(PVE, "token", "no `proxmox` section in the inventory")]
    token_id = f"{pve.user}!{pve.token_name}"

    def token() -> list[Line]:
        release = access.version(services.proxmox)
        return [ok(PVE, f"token {token_id}", f"valid, TLS verified (Proxmox VE {release})")]

    lines = guarded(PVE, f"token {token_id}", "check proxmox.token_file holds the secret of "
                    f"{token_id} (`pveum user token list {pve.user}`), the endpoints and "
                    "proxmox.ca_file (the CA of the PVE certificate; TLS is never skipped)", token)
    if any(line.red for line in lines):
        return lines

    def privileges() -> list[Line]:
        lacking: dict[tuple[str, ...], list[str]] = {}  # missing privileges -> paths
        for path, needed in wanted(inventory).items():
            held = access.privileges(services.proxmox, path)
            missing = tuple(p for p in needed if p not in held)
            if missing:
                lacking.setdefault(missing, []).append(path)
        if not lacking:
            return [ok(PVE, "privileges", f"{', '.join(VM_PRIVILEGES)} on every node's VM, "
                                          f"{', '.join(ROOT_PRIVILEGES)} on /")]
        return [fail(PVE, "privileges", "; ".join(
                    f"{token_id} lacks {', '.join(missing)} on {', '.join(paths)}"
                    for missing, paths in lacking.items()),
                    "grant them, e.g. `pveum acl modify /vms --tokens '" + token_id + "' "
                    "--roles <a role holding them>` (a privilege-separated token needs the "
                    "grant on the token and on its user)")]

    return lines + guarded(PVE, "privileges", "check the token can read /access/permissions",
                           privileges)

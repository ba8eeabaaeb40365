"""Terraform's own Proxmox login: valid over verified TLS, and holding the privileges the
project's provider needs to create the inventory's VMs, on the paths PVE checks them.

drbot never hands Terraform its token, so a wrong or under-privileged Terraform login would
otherwise be found only mid-rebuild. The login is resolved by the code that resolves it for the
Terraform run (adapters.terraform_state.proxmox_login: provider block, then the environment
drbot gives Terraform); its secret is only sent to PVE and given to the redactor.

The privileges: bpg/proxmox docs/index.md ("Creating an API Token on the Proxmox Server") names
a Terraform role as an example; of it, creating a VM needs what PVE checks for ``POST
/nodes/{node}/qemu`` and its config (qemu-server ``PVE/API2/Qemu.pm``): VM.Allocate and the
VM.Config.* of the options set, on ``/vms/{vmid}``; VM.PowerMgmt to start it; VM.Audit to read
it back; Datastore.AllocateSpace (and Datastore.Audit to read the storage) on
``/storage/{datastore}`` for every disk (bpg's default datastore is ``local-lvm``,
docs/resources/virtual_environment_vm.md); SDN.Use on ``/sdn/zones/localnetwork/{bridge}`` for a
network device on a plain bridge (PVE 8+, ``PVE::GuestHelpers::check_vnet_access``; bpg's default
bridge is ``vmbr0``); VM.Clone on the template a ``clone`` block names; Sys.Audit on each host's
``/nodes/{host}`` (the provider reads the node's status and network).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.doctor.result import Line, System, fail, guarded, ok, skip

if TYPE_CHECKING:
    from adapters.proxmox.client import PveClient
    from adapters.terraform import TerraformConfig
    from adapters.terraform_state import ProviderLogin
    from bot.config.inventory import Inventory
    from bot.worker.services import Services

PVE = System.PROXMOX
TOKEN_ID = re.compile(r"\A[^@!=\s]+@[^@!=\s]+![^@!=\s]+\Z")
VM_PRIVILEGES = ("VM.Allocate", "VM.Audit", "VM.Config.CDROM", "VM.Config.CPU",
                 "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory",
                 "VM.Config.Network", "VM.Config.Options", "VM.PowerMgmt")
DATASTORE_PRIVILEGES = ("Datastore.AllocateSpace", "Datastore.Audit")
BRIDGE_PRIVILEGES = ("SDN.Use",)
TEMPLATE_PRIVILEGES = ("VM.Clone",)
NODE_PRIVILEGES = ("Sys.Audit",)
DEFAULT_DATASTORE = "local-lvm"
DEFAULT_BRIDGE = "vmbr0"


@dataclass(frozen=True)
class Need:
    """Privileges needed on one path, what for, and a built-in PVE role that holds them all
    (pve-access-control ``PVE/AccessControl.pm``, the special roles), for the fix."""

    path: str
    privileges: tuple[str, ...]
    what: str
    role: str


def needs(inventory: Inventory, config: TerraformConfig) -> tuple[list[Need], list[str]]:
    """What the provider needs to create the inventory's VMs with this project; and the places
    in the project whose value drbot cannot see (their paths are not checked)."""
    from adapters import terraform_state

    out = [Need(f"/vms/{node.vmid}", VM_PRIVILEGES, f"to create VM {node.vmid} ({name})",
                "PVEVMAdmin") for name, node in inventory.nodes.items()]
    out += [Need(f"/nodes/{host}", NODE_PRIVILEGES, f"to read host {host}", "PVEAuditor")
            for host in sorted({node.host for node in inventory.nodes.values()})]
    datastores, unseen = terraform_state.resource_values(config, "datastore_id")
    if not datastores and not unseen:
        datastores = {DEFAULT_DATASTORE}
    for datastore in sorted(datastores - {""}):  # "": a host path, root@pam's alone
        out.append(Need(f"/storage/{datastore}", DATASTORE_PRIVILEGES,
                        f"for the disks on datastore {datastore}", "PVEDatastoreUser"))
    bridges, unseen_bridges = terraform_state.resource_values(config, "bridge")
    if not bridges and not unseen_bridges and terraform_state.has_block(config,
                                                                        "network_device"):
        bridges = {DEFAULT_BRIDGE}
    out += [Need(f"/sdn/zones/localnetwork/{bridge}", BRIDGE_PRIVILEGES,
                 f"for network devices on bridge {bridge}", "PVESDNUser")
            for bridge in sorted(bridges)]
    templates, unseen_templates = terraform_state.clone_sources(config)
    out += [Need(f"/vms/{vmid}", TEMPLATE_PRIVILEGES, f"to clone template {vmid}",
                 "PVETemplateUser") for vmid in sorted(templates)]
    return out, unseen + unseen_bridges + unseen_templates


def check(services: Services, inventory: Inventory) -> list[Line]:
    from adapters import terraform_state

    if inventory.iac is None:
        return [skip(PVE, "terraform token", "no `iac` section in the inventory")]
    config = services.terraform
    login = terraform_state.proxmox_login(config)
    if login is None:
        return []  # the iac "terraform credentials" line is red and says what to set
    problem = _unusable(login, terraform_state.proxmox_endpoint(config))
    if isinstance(problem, Line):
        return [problem]
    endpoint = problem
    client = _client(services, inventory, login, endpoint)
    subject = f"terraform token {login.identity}"

    def token() -> list[Line]:
        from adapters.proxmox import access

        release = access.version(client)
        return [ok(PVE, subject, f"Terraform's login from {login.source} is valid at "
                                 f"{endpoint}, TLS verified (Proxmox VE {release})")]

    user = login.identity.split("!", 1)[0]
    lines = guarded(PVE, subject, f"give Terraform the right secret of {login.identity} "
                    f"({login.source}; `pveum user token list {user}` names its tokens), and "
                    "check its endpoint and proxmox.ca_file (the CA of the PVE certificate; TLS "
                    "is never skipped)", token)
    if any(line.red for line in lines):
        return lines
    wanted, unseen = needs(inventory, config)
    for need in wanted:
        lines += guarded(PVE, f"terraform {need.path}", "check the token can read "
                         "/access/permissions", _privileges(client, login.identity, need))
    lines += [skip(PVE, "terraform privileges", f"not checked: {where}") for where in unseen]
    return lines


def _unusable(login: ProviderLogin, endpoint: tuple[str | None, str] | None) -> Line | str:
    """A red (or skipped) line when the login cannot be checked; else the endpoint URL."""
    subject = "terraform token"
    if login.kind != "API token":
        return skip(PVE, subject, f"Terraform signs in as {login.kind} {login.identity or '?'} "
                    f"({login.source}); its privileges are checked for an API token only")
    if not login.visible and "an expression" in login.source:
        return skip(PVE, subject, f"Terraform's Proxmox token comes from {login.source}: its "
                    "privileges are not checked (use a variable, file() or the environment)")
    if not login.visible:
        return fail(PVE, subject, f"Terraform's Proxmox token comes from {login.source}, so "
                    "neither drbot nor a Terraform run started by drbot has it",
                    _set_it(login.source, "user@realm!name=secret"))
    if not TOKEN_ID.match(login.identity) or not login.secret:
        return fail(PVE, subject, f"Terraform's Proxmox token from {login.source} is malformed "
                    "(not user@realm!name=secret; the value is not shown)",
                    f"set it as user@realm!name=secret ({login.source})")
    if endpoint is None:
        return fail(PVE, subject, "Terraform's Proxmox provider names no endpoint",
                    "set PROXMOX_VE_ENDPOINT=https://host:8006/ in the worker's environment, "
                    "or `endpoint` in the provider block")
    url, where = endpoint
    if url is None:
        return fail(PVE, subject, f"Terraform's Proxmox endpoint comes from {where}, a value "
                    "drbot cannot see", _set_it(where, "https://host:8006/"))
    return url


def _set_it(where: str, form: str) -> str:
    """What to set for a value drbot cannot see: TF_VAR_<name> for a variable."""
    var = re.search(r"var\.([A-Za-z_][A-Za-z0-9_-]*)", where)
    if var:
        return (f"set TF_VAR_{var.group(1)}={form} in the worker's environment (drbot gives "
                "Terraform the TF_* and PROXMOX_VE_* variables), or in terraform.tfvars")
    return f"give the provider a literal or a variable drbot passes on ({form})"


def _client(services: Services, inventory: Inventory, login: ProviderLogin,
            endpoint: str) -> PveClient:
    """A PVE client with Terraform's token, verifying TLS with drbot's configured CA."""
    from adapters.proxmox.client import ProxmoxConfig, PveClient
    from bot.redact import REDACT

    REDACT.add([login.secret])
    user, name = login.identity.split("!", 1)
    ca_file = inventory.proxmox.ca_file if inventory.proxmox else None
    return PveClient(ProxmoxConfig([endpoint], user, name, login.secret, ca_file=ca_file))


def _privileges(client: PveClient, token_id: str, need: Need) -> Callable[[], list[Line]]:
    def run() -> list[Line]:
        from adapters.proxmox import access

        held = access.privileges(client, need.path)
        missing = [p for p in need.privileges if p not in held]
        subject = f"terraform {need.path}"
        if not missing:
            held_text = (", ".join(need.privileges) if len(need.privileges) <= 2
                         else f"the {len(need.privileges)} privileges")
            return [ok(PVE, subject, f"{token_id} holds {held_text} {need.what}")]
        user = token_id.split("!", 1)[0]
        return [fail(PVE, subject, f"{token_id} lacks {', '.join(missing)} on {need.path} "
                     f"({need.what})",
                     f"`pveum acl modify {need.path} --tokens '{token_id}' --roles {need.role}` "
                     f"(a privilege-separated token needs it on its user too: "
                     f"`pveum acl modify {need.path} --users {user} --roles {need.role}`)")]
    return run

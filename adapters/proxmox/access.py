"""What drbot's API token may do: ``GET /access/permissions`` (any user may ask about itself).

PVE answers ``{path: {privilege: propagate}}``; asked with ``path`` it gives the privileges that
apply there, inherited ones included (pve-access-control ``PVE/API2/AccessControl.pm``,
``permissions``). The answer is read-only and needs no privilege.
"""

from __future__ import annotations

from adapters.proxmox.client import PveClient
from adapters.proxmox.errors import Op


def version(pve: PveClient) -> str:
    """``GET /version``: proves the token and the TLS chain on the first endpoint that answers."""
    answer = pve._call("GET", ("version",), Op("read the Proxmox version")) or {}
    return str(answer.get("version", "?"))


def privileges(pve: PveClient, path: str) -> set[str]:
    """The privileges the token holds on ``path`` ('/', '/vms/101', '/nodes/pve1', ...)."""
    answer = pve._call("GET", ("access", "permissions"), Op(f"read the permissions on {path}"),
                       path=path) or {}
    held: set[str] = set()
    for granted, privs in answer.items():
        if granted == path or granted == "/" or path.startswith(granted.rstrip("/") + "/"):
            held.update(p for p, on in (privs or {}).items() if on is not None)
    return held

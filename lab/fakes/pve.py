"""A fake two-node Proxmox VE cluster (fakepve over real HTTPS) and a Proxmox adapter for it.

``pve`` gives ``(server, proxmox)``: the running ``fakepve.FakePve`` (seed VMs and inject faults on
it) and a ``Proxmox`` configured with an API token and the fake's CA file. Tasks finish at once
(``time_scale`` 0) unless a test sets ``server.time_scale``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from fakepve import FakePve, FakeVm

from adapters.proxmox.client import ProxmoxConfig
from adapters.proxmox.vms import Proxmox

NODES = ("pve1", "pve2")
TOKEN_USER = "drbot@pve"
TOKEN_NAME = "dr"
TOKEN_SECRET = "9b1e7c0a-token-secret-4f2d"


class PveLab(NamedTuple):
    """The fake PVE server and a Proxmox adapter pointed at it."""

    server: FakePve
    proxmox: Proxmox


def pve_config(server: FakePve, cafile: str | None, **overrides: Any) -> ProxmoxConfig:
    """The adapter settings for this fake: its URL, the test token, its CA file."""
    settings: dict[str, Any] = {
        "endpoints": [server.url], "user": TOKEN_USER, "token_name": TOKEN_NAME,
        "token_value": TOKEN_SECRET, "ca_file": cafile, "timeout": 5,
    }
    settings.update(overrides)
    return ProxmoxConfig(**settings)


def add_volume(server: FakePve, vmid: int, volname: str, storage: str = "local-lvm",
               size: int = 8 * 1024**3) -> str:
    """Put a disk image of the VM on a storage of the fake; returns its volume id."""
    volumes = server.storages[storage].setdefault("volumes", {})
    volumes[volname] = {"content": "images", "format": "raw", "size": size, "vmid": vmid,
                        "ctime": int(time.time())}
    return f"{storage}:{volname}"


def add_vm(server: FakePve, vmid: int, node: str = "pve1", status: str = "running",
           name: str | None = None, **kwargs: Any) -> FakeVm:
    """Create a VM on a node of the fake, with one 8 GiB disk on local-lvm."""
    disk = add_volume(server, vmid, f"vm-{vmid}-disk-0")
    config = {"scsi0": f"{disk},size=8G", "memory": 2048, "cores": 2}
    config.update(kwargs.pop("config", {}))
    return server.add_vm(vmid, name or f"vm{vmid}", node=node, status=status, config=config,
                         **kwargs)


def pve_client(server: FakePve, cafile: str) -> Any:
    """A plain proxmoxer client on the fake, for starting tasks the adapter does not start."""
    from proxmoxer import ProxmoxAPI

    return ProxmoxAPI(f"{server.host}:{server.port}", backend="https", user=TOKEN_USER,
                      token_name=TOKEN_NAME, token_value=TOKEN_SECRET, verify_ssl=cafile,
                      timeout=5)


@pytest.fixture
def pve(fakepve: FakePve, fakepve_cafile: str) -> Iterator[PveLab]:
    """A two-node fake cluster with the test token, and a Proxmox adapter for it."""
    for node in NODES:
        fakepve.add_node(node)
    fakepve.apitokens[f"{TOKEN_USER}!{TOKEN_NAME}"] = TOKEN_SECRET
    proxmox = Proxmox(pve_config(fakepve, fakepve_cafile))
    yield PveLab(fakepve, proxmox)
    proxmox.close()

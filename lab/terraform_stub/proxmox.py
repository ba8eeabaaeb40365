"""The slice of the Proxmox API the bpg/proxmox provider uses for a VM, spoken to the lab's
fakepve: create (with a new SMBIOS uuid) and start, stop and destroy, waiting on each task.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lab.terraform_stub.ui import Failed


class Proxmox:
    """The slice of the Proxmox API the bpg provider uses for a VM."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        import requests

        self.url = cfg["endpoint"].rstrip("/") + "/api2/json"
        token = Path(cfg["api_token_file"]).read_text().strip()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"PVEAPIToken={cfg['api_token_id']}={token}"
        # passed on every request: a session's verify loses to REQUESTS_CA_BUNDLE otherwise
        self.ca_file = cfg["ca_file"]

    def call(self, method: str, path: str, **params: Any) -> Any:
        import requests

        try:
            resp = self.session.request(
                method, self.url + path, data=params or None, timeout=30, verify=self.ca_file
            )
        except requests.RequestException as exc:
            raise Failed(
                "Error communicating with the Proxmox API", f"{method} {path}: {exc}"
            ) from exc
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            reason = resp.reason or ""
            detail = body.get("message") or reason
            if body.get("errors"):
                detail += " " + json.dumps(body["errors"])
            raise Failed(
                f"received an HTTP {resp.status_code} response", f"Reason: {detail}".strip()
            )
        return resp.json().get("data")

    def wait(self, node: str, upid: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.call("GET", f"/nodes/{node}/tasks/{upid}/status")
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus", ""))
                if exit_status != "OK" and not exit_status.startswith("WARNINGS"):
                    raise Failed("task failed", f"task {upid} ended with: {exit_status}")
                return
            if time.monotonic() > deadline:
                raise Failed("timeout while waiting for a Proxmox task", upid)
            time.sleep(0.05)

    def status(self, node: str, vmid: int) -> str | None:
        try:
            return self.call("GET", f"/nodes/{node}/qemu/{vmid}/status/current").get("status")
        except Failed as exc:
            if "does not exist" in exc.detail:
                return None
            raise

    def destroy(self, node: str, vmid: int) -> None:
        if self.status(node, vmid) == "running":
            self.wait(node, self.call("POST", f"/nodes/{node}/qemu/{vmid}/status/stop"))
        upid = self.call(
            "DELETE", f"/nodes/{node}/qemu/{vmid}?purge=1&destroy-unreferenced-disks=1"
        )
        self.wait(node, upid)

    def create(self, vm: dict[str, Any], smbios_uuid: str) -> None:
        node, vmid = vm["node_name"], vm["vm_id"]
        upid = self.call(
            "POST",
            f"/nodes/{node}/qemu",
            vmid=vmid,
            name=vm["name"],
            memory=vm.get("memory", 4096),
            cores=vm.get("cores", 2),
            scsihw="virtio-scsi-single",
            agent=1,
            scsi0=f"local-lvm:{vm.get('disk_gb', 32)}",
            net0="virtio,bridge=vmbr0",
            smbios1=f"uuid={smbios_uuid}",
            tags="k3s;terraform",
        )
        self.wait(node, upid)
        self.wait(node, self.call("POST", f"/nodes/{node}/qemu/{vmid}/status/start"))


def rotate_host_key(vm: dict[str, Any]) -> None:
    """The new VM boots with a new SSH host key (its endpoint picks it up when the VM runs)."""
    from lab.servers import new_host_key

    if vm.get("ssh_host_key"):
        new_host_key(Path(vm["ssh_host_key"]))

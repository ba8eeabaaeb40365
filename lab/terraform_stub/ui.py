"""What the lab's terraform prints: Terraform's machine-readable UI (`-json`: one object per
line with @level, @message, @module, @timestamp and type; domain.md §7) or its human text, its
error diagnostics (`Failed`), and how it names the VMs it manages (resource addresses).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

VERSION = "1.9.5"
UI_VERSION = "1.2"
RESOURCE_TYPE = "proxmox_virtual_environment_vm"
RESOURCE_NAME = "k3s"


class Failed(Exception):
    """A Terraform error diagnostic: summary and detail."""

    def __init__(self, summary: str, detail: str = "", address: str | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.detail = detail
        self.address = address


@dataclass
class Ui:
    json: bool
    color: bool = False
    lines: list[str] = field(default_factory=list)

    def emit(self, type_: str, message: str, level: str = "info", **extra: Any) -> None:
        if self.json:
            now = datetime.now().astimezone().isoformat(timespec="microseconds")
            line = {
                "@level": level,
                "@message": message,
                "@module": "terraform.ui",
                "@timestamp": now,
                **extra,
                "type": type_,
            }
            print(json.dumps(line), flush=True)
        elif type_ not in ("version",):
            print(message, flush=True)

    def version(self) -> None:
        self.emit("version", f"Terraform {VERSION}", terraform=VERSION, ui=UI_VERSION)

    def diagnostic(
        self, severity: str, summary: str, detail: str = "", address: str | None = None
    ) -> None:
        diag: dict[str, Any] = {"severity": severity, "summary": summary, "detail": detail}
        if address:
            diag["address"] = address
        level = "error" if severity == "error" else "warn"
        prefix = "Error" if severity == "error" else "Warning"
        if self.json:
            self.emit("diagnostic", f"{prefix}: {summary}", level=level, diagnostic=diag)
        else:
            print(
                f"\n{prefix}: {summary}\n\n{detail}\n",
                file=sys.stderr if severity == "error" else sys.stdout,
                flush=True,
            )


def resource_info(key: str) -> dict[str, Any]:
    addr = address(key)
    return {
        "addr": addr,
        "module": "",
        "resource": addr,
        "implied_provider": "proxmox",
        "resource_type": RESOURCE_TYPE,
        "resource_name": RESOURCE_NAME,
        "resource_key": key,
    }


def address(key: str) -> str:
    return f'{RESOURCE_TYPE}.{RESOURCE_NAME}["{key}"]'

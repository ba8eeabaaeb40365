"""A schema-only bpg/proxmox provider for the real `terraform` binary (see provider.py), and how
a test installs it: a provider directory and a CLI configuration whose ``dev_overrides`` send
Terraform to it (Terraform docs, "CLI Configuration File": provider_installation, dev_overrides;
with an override Terraform needs no `init` and no lock-file entry for that provider)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

SOURCE = "bpg/proxmox"
EXECUTABLE = "terraform-provider-proxmox"
REPO = Path(__file__).resolve().parents[2]


def install(where: Path) -> Path:
    """Put the provider under ``where`` and return the CLI configuration to pass to Terraform in
    TF_CLI_CONFIG_FILE. Every other provider still installs as usual (``direct {}``)."""
    plugins = where / "providers"
    plugins.mkdir(parents=True, exist_ok=True)
    program = plugins / EXECUTABLE
    program.write_text("#!/bin/sh\n"
                       f"PYTHONPATH={shlex.quote(str(REPO))} exec "
                       f"{shlex.quote(sys.executable)} -m lab.tfplugin.provider \"$@\"\n")
    program.chmod(0o755)
    config = where / "terraform.rc"
    config.write_text("provider_installation {\n"
                      f"  dev_overrides {{\n    {_hcl(SOURCE)} = {_hcl(str(plugins))}\n  }}\n"
                      "  direct {}\n}\n")
    return config


def _hcl(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

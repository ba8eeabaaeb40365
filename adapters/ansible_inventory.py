"""`ansible-inventory --list`: the hosts, groups and host variables of an Ansible inventory, as
JSON (ansible-core's lib/ansible/cli/inventory.py; ``_meta.hostvars`` holds every host's
variables). Read-only."""

from __future__ import annotations

import json
import subprocess
import tempfile
from typing import Any

from adapters.ansible import AnsibleConfig, _tool_env
from adapters.errors import AdapterError, NotFound


def listing(config: AnsibleConfig) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="drbot-inventory-") as scratch:
        env = {**_tool_env(config), "ANSIBLE_LOCAL_TEMP": scratch}
        try:
            done = subprocess.run(  # noqa: S603 - an argument list
                ["ansible-inventory", "-i", config.inventory, "--list"], capture_output=True,
                text=True, env=env, cwd=config.project_dir, timeout=120, check=False)
        except FileNotFoundError:
            raise NotFound("ansible-inventory is not installed next to drbot nor on PATH") \
                from None
    if done.returncode != 0:
        error = " ".join(done.stderr.split())[:300]
        raise AdapterError(f"ansible-inventory could not read {config.inventory}: {error}")
    try:
        return dict(json.loads(done.stdout))
    except ValueError:
        raise AdapterError(f"ansible-inventory gave no JSON for {config.inventory}") from None

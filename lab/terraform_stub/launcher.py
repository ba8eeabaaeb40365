"""The `terraform` executable of the lab and of the Terraform adapter's unit tests.

It runs `lab.terraform_stub` without executing the `lab` package's `__init__`, which imports
the whole homelab (kmock, aiohttp: about a second). drbot runs terraform several times a job,
and a unit test's one-second timeout must find the stub already running, not still importing.
The lab package is registered bare (its path, no code run), so `lab.terraform_stub` and the
lab modules it imports load as usual.
"""

from __future__ import annotations

import sys
from pathlib import Path

LAB = Path(__file__).resolve().parents[1]


def write(path: Path) -> None:
    """An executable at `path` that is the lab's terraform, run by this Python."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'#!{sys.executable}\n"""The lab\'s terraform (see the package lab.terraform_stub)."""\n'
        "import importlib.machinery\n"
        "import importlib.util\n"
        "import sys\n"
        f"sys.path.insert(0, {str(LAB.parent)!r})\n"
        'spec = importlib.machinery.ModuleSpec("lab", None, is_package=True)\n'
        f"spec.submodule_search_locations = [{str(LAB)!r}]\n"
        'sys.modules["lab"] = importlib.util.module_from_spec(spec)\n'
        "from lab.terraform_stub.cli import main\n"
        "sys.exit(main())\n"
    )
    path.chmod(0o755)

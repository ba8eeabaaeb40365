"""The systemd units' Documentation= points at files a pip install puts there: the wheel carries
docs/, the schemas and the examples under share/doc/drbot (of the venv the units run from)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]
PREFIX = "/opt/drbot/"  # the venv of docs/deploy.md's systemd install


def test_unit_documentation_exists_after_installation(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("drbot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = {re.sub(r"^drbot-[^/]+\.data/data/", "", n) for n in names if ".data/data/" in n}
    assert {"share/doc/drbot/deploy.md", "share/doc/drbot/configuration.md",
            "share/doc/drbot/schema/inventory.schema.json", "share/doc/drbot/examples/inventory.yaml",
            "share/doc/drbot/examples/playbooks/k3s-join.yml"} <= data
    units = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
    assert units
    for unit in units:
        links = re.findall(r"^Documentation=file://(\S+)$", unit.read_text(), re.M)
        assert links, f"{unit.name} has no Documentation= line"
        for link in links:
            assert link.startswith(PREFIX) and link[len(PREFIX):] in data, (unit.name, link)

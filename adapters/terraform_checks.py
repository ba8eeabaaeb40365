"""Checks before any Terraform run: the checkout is at the inventory's revision and clean, and
the state lives in a backend drbot may use (a local state only when the inventory allows it).

``plan``/``apply`` do not repeat them, so a runbook calls them first (and puts the commit into
the plan digest).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable
from typing import TYPE_CHECKING

from adapters import subprocesses
from adapters.errors import AdapterError, NotFound, Refused

if TYPE_CHECKING:
    from adapters.terraform import TerraformConfig


def _git(workdir: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - an argument list
        ["git", "-C", workdir, *args], capture_output=True, text=True, timeout=60, check=False,
        env=subprocesses.minimal_env(),
    )


def check_revision(config: TerraformConfig) -> str:
    """Return the workdir's Git commit, refusing a dirty or wrong checkout.

    With ``revision`` set, the workdir must be a Git checkout whose HEAD is exactly that commit
    (a branch or tag name is resolved first) and ``git status --porcelain`` must be empty. Without
    it, the HEAD commit is returned (with ``+dirty`` appended when the tree has changes, so a
    digest never mistakes it for the clean commit), or ``""`` when the workdir is not a checkout.
    """
    if not os.path.isdir(config.workdir):
        raise NotFound(f"Terraform workdir {config.workdir} does not exist; fix iac.terraform.path")
    head = _git(config.workdir, "rev-parse", "--verify", "HEAD^{commit}")
    if head.returncode != 0:
        if config.revision is None:
            return ""
        raise Refused(
            f"{config.workdir} is not a Git checkout, but revision {config.revision} is required; "
            "clone the repository there and check that revision out"
        )
    actual = head.stdout.strip()
    dirty = _dirty_files(config.workdir)
    if config.revision is None:
        return actual + ("+dirty" if dirty else "")
    expected = _resolve(config.workdir, config.revision)
    if actual != expected:
        raise Refused(
            f"{config.workdir} is at commit {actual}, expected {config.revision} "
            f"({expected or 'not in this clone'}); "
            f"run `git fetch && git checkout {config.revision}` there"
        )
    if dirty:
        shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "")
        raise Refused(
            f"{config.workdir} at {actual} has local changes ({shown}); Git is the source of "
            "truth: commit and push them, or discard them with `git checkout -- . && git clean -fd`"
        )
    return actual


def _resolve(workdir: str, revision: str) -> str:
    res = _git(
        workdir, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"
    )
    return res.stdout.strip() if res.returncode == 0 else ""


def _dirty_files(workdir: str) -> list[str]:
    res = _git(workdir, "status", "--porcelain")
    if res.returncode != 0:
        raise AdapterError(f"`git status` failed in {workdir}: {res.stderr.strip()[:300]}")
    return [line[3:] for line in res.stdout.splitlines() if line.strip()]


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)(#|//).*$", "", text)


def configured_backend(workdir: str) -> str | None:
    """The backend named in the configuration: ``backend "TYPE"`` or ``cloud`` inside a
    top-level ``terraform`` block of a ``*.tf`` file, or ``terraform.backend`` in ``*.tf.json``."""
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        if name.endswith(".tf.json"):
            with open(path, encoding="utf-8") as f:
                blocks = json.load(f).get("terraform", [])
            for block in blocks if isinstance(blocks, list) else [blocks]:
                if "cloud" in block:
                    return "cloud"
                if block.get("backend"):
                    backend = block["backend"]
                    backend = backend[0] if isinstance(backend, list) else backend
                    return next(iter(backend))
        elif name.endswith(".tf"):
            with open(path, encoding="utf-8") as f:
                text = _strip_comments(f.read())
            for body in _blocks(text, "terraform"):
                found = re.search(r'\bbackend\s+"([^"]+)"\s*\{', body)
                if found:
                    return found.group(1)
                if re.search(r"\bcloud\s*\{", body):
                    return "cloud"
    return None


def _blocks(text: str, keyword: str) -> Iterable[str]:
    """Bodies of the top-level ``keyword { ... }`` blocks (braces balanced; strings ignored)."""
    for match in re.finditer(rf"(?m)^\s*{keyword}\s*\{{", text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        yield text[match.end() : i - 1]


def initialised_backend(workdir: str) -> str | None:
    path = os.path.join(workdir, ".terraform", "terraform.tfstate")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    backend = data.get("backend") or {}
    return backend.get("type") or None


def check_backend(config: TerraformConfig) -> str:
    """Return the backend type, refusing local state unless ``allow_local_state``.

    What is checked: the backend the configuration declares (a ``backend "TYPE"`` or ``cloud``
    block inside a top-level ``terraform { }`` block of a ``*.tf`` file, or ``terraform.backend``
    in ``*.tf.json``; none means the implicit ``local`` backend). The configuration is the
    truth, not ``.terraform/terraform.tfstate``: that file only records what the last ``init``
    set up, and ``needs_init`` compares the two so that a changed backend is initialised again.
    A remote backend with a non-empty ``terraform.tfstate`` left in the workdir is refused too:
    someone ran with local state there, and that state may hold resources the remote one lacks.
    """
    if not os.path.isdir(config.workdir):
        raise NotFound(f"Terraform workdir {config.workdir} does not exist; fix iac.terraform.path")
    try:
        declared = configured_backend(config.workdir)
    except (OSError, ValueError) as exc:
        raise Refused(
            f"cannot read the Terraform configuration in {config.workdir}: {exc}"
        ) from exc
    backend = declared or "local"
    if backend == "local":
        if not config.allow_local_state:
            raise Refused(
                f"Terraform in {config.workdir} keeps its state locally (no remote backend is "
                "configured); configure a remote backend (s3, http, pg, ...) or set "
                "allow_local_state in the iac section of the inventory"
            )
        return backend
    stray = os.path.join(config.workdir, "terraform.tfstate")
    if os.path.isfile(stray) and os.path.getsize(stray) > 0 and not config.allow_local_state:
        raise Refused(
            f"{stray} exists although the backend is {backend!r}; someone ran Terraform with local "
            "state here. Migrate it (`terraform init -migrate-state`) or remove it, then retry"
        )
    return backend

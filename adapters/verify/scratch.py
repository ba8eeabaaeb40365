"""Scratch space for a verification: checked before it starts, removed after it ends.

A verification writes restored data (a sparse volume image, a PostgreSQL data directory, an etcd
data dir) next to the worker. Each gets its own directory under a configured root, named
``drbot-verify-<pid>-<start ticks>-<random>``: the owner's pid and start time are in the name, so a
later ``sweep`` can tell the directories of a dead worker (or a killed job) from those still in
use and remove them. Removal also runs when the verification is cancelled or fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from adapters.errors import AdapterError
from adapters.subprocesses import alive, start_ticks

PREFIX = "drbot-verify-"
_NAME = re.compile(rf"^{PREFIX}(?P<pid>\d+)-(?P<ticks>\d+)-[0-9a-f]+$")
HEADROOM = 64 << 20  # left free beyond the estimate: logs, temporary files of the tools


@dataclass(frozen=True)
class ScratchConfig:
    """Where verifications put restored data (``root``, created if missing) and how much of
    that file system they may use at most (``max_bytes``, 0 = whatever is free)."""

    root: str
    max_bytes: int = 0


def free_bytes(root: str) -> int:
    return shutil.disk_usage(root).free


def check_space(config: ScratchConfig, needed: int, what: str) -> None:
    """Refuse before starting when ``needed`` bytes (plus headroom) do not fit."""
    os.makedirs(config.root, exist_ok=True)
    free = free_bytes(config.root)
    want = needed + HEADROOM
    if config.max_bytes and needed > config.max_bytes:
        raise AdapterError(
            f"{what} needs about {_human(needed)} of scratch space but verification may use at "
            f"most {_human(config.max_bytes)}: raise verify.scratch_max_bytes or verify a "
            "smaller backup")
    if want > free:
        raise AdapterError(
            f"{what} needs about {_human(want)} of scratch space in {config.root} but only "
            f"{_human(free)} is free: free some space or point verify.scratch_dir elsewhere")


@contextlib.contextmanager
def scratch_dir(config: ScratchConfig) -> Iterator[Path]:
    """A fresh private directory under the root, removed on exit whatever happened."""
    os.makedirs(config.root, exist_ok=True)
    pid = os.getpid()
    name = f"{PREFIX}{pid}-{start_ticks(pid) or 0}-{secrets.token_hex(4)}"
    path = Path(config.root) / name
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        remove(path)


def remove(path: Path) -> None:
    """Remove a scratch directory even when a tool left read-only files in it."""
    def writable(_func: object, target: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            parent = os.path.dirname(target)
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
            os.chmod(target, stat.S_IRWXU)
        with contextlib.suppress(FileNotFoundError):
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            else:
                os.unlink(target)

    if path.exists():
        shutil.rmtree(path, onerror=writable)


def sweep(root: str) -> list[str]:
    """Remove the scratch directories whose owning process is gone; returns their names.

    Run at worker start and before each verification, so a worker killed mid-verification
    (SIGKILL, OOM, a lost node) leaves nothing behind for long.
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = _NAME.match(entry.name)
        if not match or not entry.is_dir(follow_symlinks=False):
            continue
        pid, ticks = int(match["pid"]), int(match["ticks"])
        if alive(pid, ticks or None):
            continue
        remove(Path(entry.path))
        removed.append(entry.name)
    return removed


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


human = _human

"""The state lock: an info file created exclusively, which outlives a killed process as a
remote backend's lock does (a stale lock must be force-unlocked), with Terraform's wording when
it is held.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.terraform_stub.state import STATE
from lab.terraform_stub.ui import VERSION, Failed

LOCK_INFO = ".terraform.tfstate.lock.info"
LOCK_HELP = (
    "Terraform acquires a state lock to protect the state from being written\n"
    "by multiple users at the same time. Please resolve the issue above and try\n"
    'again. For most commands, you can disable locking with the "-lock=false"\n'
    "flag, but this is not recommended."
)


def go_time(when: datetime) -> str:
    """Go's time.Time String(), as Terraform prints a lock's Created."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f000 +0000 UTC")


def write_lock(root: Path, operation: str, who: str | None = None) -> dict[str, Any] | None:
    """Create the lock info file atomically; None if another holder has it."""
    info = {
        "ID": str(uuid.uuid4()),
        "Operation": operation,
        "Info": "",
        "Who": who or f"{getpass.getuser()}@{socket.gethostname()}",
        "Version": VERSION,
        "Created": go_time(datetime.now(UTC)),
        "Path": STATE,
    }
    try:
        fd = os.open(root / LOCK_INFO, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w") as out:
        json.dump(info, out)
    return info


def lock_detail(root: Path) -> str:
    try:
        info = json.loads((root / LOCK_INFO).read_text())
    except (OSError, ValueError):
        info = {}
    return (
        "Error message: resource temporarily unavailable\nLock Info:\n"
        f"  ID:        {info.get('ID', '')}\n  Path:      {info.get('Path', STATE)}\n"
        f"  Operation: {info.get('Operation', '')}\n  Who:       {info.get('Who', '')}\n"
        f"  Version:   {info.get('Version', '')}\n  Created:   {info.get('Created', '')}\n"
        f"  Info:      {info.get('Info', '')}\n\n{LOCK_HELP}"
    )


def acquire(root: Path, operation: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = write_lock(root, operation)
        if info is not None:
            return info
        if time.monotonic() >= deadline:
            raise Failed("Error acquiring the state lock", lock_detail(root))
        time.sleep(0.2)


def release(root: Path, info: dict[str, Any]) -> None:
    try:
        held = json.loads((root / LOCK_INFO).read_text())
    except (OSError, ValueError):
        return
    if held.get("ID") == info["ID"]:
        (root / LOCK_INFO).unlink(missing_ok=True)


def force_unlock(root: Path, wanted: str) -> int:
    """`terraform force-unlock ID`: removes the lock only when ID is the holder's."""
    try:
        held = json.loads((root / LOCK_INFO).read_text())
    except (OSError, ValueError):
        raise Failed("Failed to unlock state", "LocalState not locked") from None
    if held.get("ID") != wanted:
        raise Failed(
            "Failed to unlock state",
            f"lock id {wanted!r} does not match existing lock ({held.get('ID')})",
        )
    (root / LOCK_INFO).unlink()
    print(
        "Terraform state has been successfully unlocked!\n\nThe state has been unlocked, and "
        "Terraform commands should now be able to\nobtain a new lock on the remote state.",
        flush=True,
    )
    return 0

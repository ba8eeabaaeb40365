"""Proxmox errors: every vendor exception translated into the errors of ``adapters.errors``.

Each message is one an operator can act on. Translated errors are raised outside the ``except``
block on purpose: a ``requests`` exception carries the prepared request, whose headers hold the API
token secret, and an error chained to it (``__context__``/``__cause__``) would carry the secret
along into logs and job records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adapters.errors import AdapterError, Conflict, NotFound, Refused, TimedOut, Unreachable

if TYPE_CHECKING:
    from adapters.proxmox.client import ProxmoxConfig

# qemu-server's lock names (PVE/QemuServer.pm, the `lock` option): backup, clone, create,
# migrate, rollback, snapshot, snapshot-delete, suspending, suspended; some have a dash.
LOCKED = re.compile(r"VM is locked \(([\w-]+)\)")
NO_QUORUM = re.compile(r"no quorum", re.IGNORECASE)
MISSING = re.compile(r"Configuration file '[^']+' does not exist|unable to find configuration file")
RUNNING_DESTROY = re.compile(r"is running - destroy failed")
CONFIG_LOCK_TIMEOUT = re.compile(r"can't lock file '[^']+' - got timeout")


@dataclass(frozen=True)
class Op:
    """What a request is for, so an error can name the operation, node and VM."""

    what: str
    node: str | None = None
    vmid: int | None = None


def vm_label(vmid: int | None, node: str | None) -> str:
    label = f"VM {vmid}" if vmid is not None else "the VM"
    return f"{label} on node {node}" if node else label


def locked_message(vmid: int | None, node: str | None, lock: str) -> str:
    where = f" on {node}" if node else ""
    return (f"{vm_label(vmid, node)} is locked ({lock}): Proxmox refuses to change it while the "
            f"lock is held. Wait for the {lock} to finish, or if it was interrupted, run "
            f"`qm unlock {vmid}`{where} and try again.")


def quorum_message(what: str) -> str:
    return (f"The Proxmox cluster is not quorate, so it refuses to {what} (/etc/pve is read-only "
            "without quorum). Run `pvecm status` on a node and bring enough nodes (or the corosync "
            "network) back until it shows `Quorate: Yes`, then retry.")


def translate(exc: BaseException, endpoint: str, op: Op,
              config: ProxmoxConfig) -> tuple[AdapterError, int | None]:
    """The project error for a vendor exception that came with (or instead of) an answer.

    Also the HTTP status of that answer (None: no HTTP answer).
    """
    from proxmoxer.core import ResourceException

    if isinstance(exc, ResourceException):
        return _http_error(exc, endpoint, op, config), exc.status_code
    if isinstance(exc, OSError) and not _is_requests_error(exc):
        return AdapterError(
            f"Cannot use the CA bundle for Proxmox at {endpoint} (`ca_file` = "
            f"{config.ca_file!r}): {_short(exc)}. Point `ca_file` at a readable PEM file "
            "holding the CA that signed the Proxmox certificates."), None
    if isinstance(exc, OSError) and _is_timeout(exc):
        return TimedOut(
            f"Proxmox at {endpoint} did not answer within {config.timeout:g}s while "
            f"trying to {op.what}; the request may or may not have been applied. Check the "
            "API's load and the network, and the state of the VM; the operation is safe to "
            "retry."), None
    if isinstance(exc, OSError):
        return Unreachable(
            f"The connection to Proxmox at {endpoint} failed while trying to {op.what} "
            f"({_short(exc)}); the request may or may not have been applied. Check the "
            "network and the state of the VM; the operation is safe to retry."), None
    return AdapterError(
        f"Proxmox at {endpoint} gave an unusable answer while trying to {op.what}: "
        f"{_short(exc)}."), None


def _http_error(exc: Any, endpoint: str, op: Op, config: ProxmoxConfig) -> AdapterError:
    code = int(exc.status_code)
    text = str(exc.content or "").strip()
    if exc.errors:
        text += f" ({exc.errors})"
    if code == 401:
        return AdapterError(
            f"Proxmox at {endpoint} rejected the API token {config.token_id} "
            f"({code} {text}). Check that the token exists and has not expired "
            f"(`pveum user token list {config.user}`) and that the configured secret is "
            "the one shown when the token was created.")
    if code == 403:
        return AdapterError(
            f"The API token {config.token_id} may not {op.what}: {text}. Grant the named "
            "privilege on that path to the token (and to its user when the token has "
            "privilege separation).")
    if code in (595, 596):
        node = f"Node {op.node}" if op.node else "A Proxmox node"
        return Unreachable(
            f"{node} is offline or unreachable from the API endpoint {endpoint} ({code} "
            f"{text}) while trying to {op.what}. Check that the node is up and in the "
            "cluster (`pvecm status`), or act on a VM of another node.")
    refusal = _refusal(text, op)
    if refusal is not None:
        return refusal
    return AdapterError(f"Proxmox at {endpoint} failed to {op.what}: {code} {text}.")


def _refusal(text: str, op: Op) -> AdapterError | None:
    """The error for an answer whose text names why PVE refused (a lock, no quorum, ...)."""
    lock = LOCKED.search(text)
    if lock:
        return Conflict(locked_message(op.vmid, op.node, lock.group(1)))
    if NO_QUORUM.search(text):
        return Refused(quorum_message(op.what))
    if MISSING.search(text):
        return NotFound(f"{vm_label(op.vmid, op.node)} does not exist ({text}). Check the "
                        "VM id and node in the inventory against `qm list` on the node.")
    if RUNNING_DESTROY.search(text):
        return Refused(f"{vm_label(op.vmid, op.node)} is running, so Proxmox refuses to "
                       "destroy it: stop it first.")
    if CONFIG_LOCK_TIMEOUT.search(text):
        return Conflict(f"Another Proxmox task holds the config lock of "
                        f"{vm_label(op.vmid, op.node)} ({text}). Wait for it to finish "
                        "(see Tasks in the web UI) and retry.")
    return None


def unreachable_message(failures: list[tuple[str, str]], op: Op, config: ProxmoxConfig) -> str:
    """Why no endpoint could be used, one reason per endpoint tried."""
    tried = "; ".join(f"{endpoint}: {reason}" for endpoint, reason in failures)
    ca = config.ca_file or "unset, so the system CA store is used"
    return (f"Cannot reach the Proxmox API to {op.what}. Tried {tried}. Check the `endpoints` "
            "setting and that pveproxy answers there; for a TLS error check that "
            f"`ca_file` ({ca}) holds the CA that signed the Proxmox certificate.")


def connect_failure(exc: BaseException, method: str, timeout: float) -> str | None:
    """Why no HTTP answer came, if trying another endpoint is safe; else None.

    A TLS failure or a refused/unresolvable connection happens before the request is sent, so any
    request may go to the next endpoint. A timeout or a dropped connection after sending may have
    been applied, so only a GET moves on.
    """
    import requests
    from urllib3.exceptions import NewConnectionError

    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS failure ({_short(exc)})"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no connection within {timeout:g}s"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, NewConnectionError) or method == "GET":
            return f"cannot connect ({_short(exc)})"
        return None
    if isinstance(exc, requests.exceptions.Timeout) and method == "GET":
        return f"no answer within {timeout:g}s"
    return None


def _is_requests_error(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, requests.RequestException)


def _is_timeout(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, requests.Timeout)


def _short(exc: BaseException) -> str:
    """The useful part of a requests/urllib3 error message (they nest several reprs)."""
    text = str(exc)
    for pattern in (r"\[(?:SSL|X509)[^\]]*\] [^(\"']*", r"\[Errno -?\d+\] [^\"')]*",
                    r"Read timed out", r"timed out"):
        found = re.search(pattern, text)
        if found:
            return found.group(0).strip()
    return text[:200]

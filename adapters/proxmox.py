"""Proxmox VE: find, stop and destroy VMs and wait on their tasks, through the PVE API (proxmoxer).

Every vendor exception is translated here into the errors of ``adapters.errors``, with a message an
operator can act on. Translated errors are raised outside the ``except`` block on purpose: a
``requests`` exception carries the prepared request, whose headers hold the API token secret, and
an error chained to it (``__context__``/``__cause__``) would carry the secret along into logs and
job records.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from adapters.errors import (
    AdapterError,
    Cancelled,
    Conflict,
    NotFound,
    Refused,
    TimedOut,
    Unreachable,
)
from adapters.progress import Hooks, Progress

# PVE::Tools::upid_status_is_error: anything but these exit statuses is a failed task.
TASK_OK = re.compile(r"^(OK|WARNINGS: \d+)$")
LOCKED = re.compile(r"VM is locked \((\w+)\)")
NO_QUORUM = re.compile(r"no quorum", re.IGNORECASE)
MISSING = re.compile(r"Configuration file '[^']+' does not exist|unable to find configuration file")
RUNNING_DESTROY = re.compile(r"is running - destroy failed")
CONFIG_LOCK_TIMEOUT = re.compile(r"can't lock file '[^']+' - got timeout")
# Task polling: start fast (most tasks end within a second), back off to POLL_MAX.
POLL_FIRST = 0.05
POLL_MAX = 1.0
# Longest single sleep, so a cancellation is noticed quickly.
CANCEL_CHECK = 0.25
LOG_PAGE = 500
# Share of stop_vm's timeout given to PVE's own stop timeout (after it PVE kills QEMU), so the
# task normally ends inside our wait.
STOP_TIMEOUT_SHARE = 0.8


@dataclass
class ProxmoxConfig:
    """How to reach the PVE API: endpoints tried in turn, an API token, and the CA bundle.

    ``token_value`` is the token secret: it is kept out of ``repr``/``str`` and never logged.
    ``ca_file`` is a PEM bundle of the CA that signed the PVE certificates; None uses the system
    store. TLS is always verified.
    """

    endpoints: list[str]
    user: str
    token_name: str
    token_value: str = field(repr=False)
    ca_file: str | None = None
    timeout: float = 10

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise AdapterError("Proxmox settings: `endpoints` is empty; list at least one "
                               "https://host:8006 URL")
        for endpoint in self.endpoints:
            _netloc(endpoint)
        if "@" not in self.user:
            raise AdapterError(f"Proxmox settings: `user` {self.user!r} needs a realm, "
                               "e.g. drbot@pve")
        if not self.token_name or not self.token_value:
            raise AdapterError("Proxmox settings: `token_name` and `token_value` are required "
                               "(create one with `pveum user token add <user> <name>`)")
        if self.timeout <= 0:
            raise AdapterError(f"Proxmox settings: `timeout` must be positive, not {self.timeout}")

    @property
    def token_id(self) -> str:
        """The token as PVE names it, user@realm!name (no secret)."""
        return f"{self.user}!{self.token_name}"


@dataclass(frozen=True)
class VM:
    """A QEMU VM as Proxmox reports it; ``lock`` and ``ha`` are empty when unset/unmanaged."""

    vmid: int
    name: str
    node: str
    status: str
    lock: str
    ha: str


@dataclass(frozen=True)
class PveNode:
    """A cluster node and whether the cluster sees it online."""

    name: str
    online: bool


@dataclass(frozen=True)
class _Op:
    """What a request is for, so an error can name the operation, node and VM."""

    what: str
    node: str | None = None
    vmid: int | None = None


@dataclass
class _Outcome:
    """A request's result, or the translated error and the HTTP status (None: no HTTP answer)."""

    value: Any = None
    error: AdapterError | None = None
    status: int | None = None


def _netloc(endpoint: str) -> str:
    """host:port of an https endpoint URL, as proxmoxer takes it."""
    parts = urlsplit(endpoint)
    plain = parts.path in ("", "/") and not parts.username
    if parts.scheme != "https" or not parts.hostname or not plain:
        raise AdapterError(f"Proxmox settings: endpoint {endpoint!r} must look like "
                           "https://host:8006 (https, a host, an optional port, no path)")
    return parts.netloc


def _vm_label(vmid: int | None, node: str | None) -> str:
    label = f"VM {vmid}" if vmid is not None else "the VM"
    return f"{label} on node {node}" if node else label


def _locked_message(vmid: int | None, node: str | None, lock: str) -> str:
    where = f" on {node}" if node else ""
    return (f"{_vm_label(vmid, node)} is locked ({lock}): Proxmox refuses to change it while the "
            f"lock is held. Wait for the {lock} to finish, or if it was interrupted, run "
            f"`qm unlock {vmid}`{where} and try again.")


def _quorum_message(what: str) -> str:
    return (f"The Proxmox cluster is not quorate, so it refuses to {what} (/etc/pve is read-only "
            "without quorum). Run `pvecm status` on a node and bring enough nodes (or the corosync "
            "network) back until it shows `Quorate: Yes`, then retry.")


class Proxmox:
    """The Proxmox VE API for drbot. The proxmoxer clients are created on first use."""

    def __init__(self, config: ProxmoxConfig) -> None:
        self.config = config
        self._clients: dict[str, Any] = {}
        self._preferred = 0

    def __repr__(self) -> str:
        return f"Proxmox(endpoints={self.config.endpoints!r}, token={self.config.token_id!r})"

    def close(self) -> None:
        """Close the HTTP sessions (a later call opens new ones)."""
        for client in self._clients.values():
            client._store["session"].close()
        self._clients.clear()

    # ------------------------------------------------------------------ VMs

    def find_vm(self, vmid: int) -> VM:
        """Locate a VM in the cluster (``/cluster/resources``, else a scan of the nodes)."""
        op = _Op(f"look up VM {vmid}", vmid=vmid)
        outcome = self._request("GET", ("cluster", "resources"), op, type="vm")
        if outcome.error is not None:
            if outcome.status in (None, 401):
                raise outcome.error
            return self._scan_nodes(vmid, op)
        for item in outcome.value or []:
            if item.get("type") == "qemu" and int(item.get("vmid", -1)) == vmid:
                return VM(vmid=vmid, name=str(item.get("name") or ""), node=str(item["node"]),
                          status=str(item.get("status") or ""), lock=str(item.get("lock") or ""),
                          ha=str(item.get("hastate") or ""))
        raise NotFound(f"No VM {vmid} in the Proxmox cluster (or the token "
                       f"{self.config.token_id} lacks VM.Audit on /vms/{vmid}). Check the VM id "
                       "in the inventory against `qm list` on the nodes.")

    def _scan_nodes(self, vmid: int, op: _Op) -> VM:
        offline = []
        for node in self.list_nodes():
            if not node.online:
                offline.append(node.name)
                continue
            for item in self._call("GET", ("nodes", node.name, "qemu"), op) or []:
                if int(item.get("vmid", -1)) == vmid:
                    return self.vm_status(node.name, vmid)
        if offline:
            raise Unreachable(f"VM {vmid} is on none of the online Proxmox nodes; the offline "
                              f"node(s) {', '.join(offline)} may hold it. Bring them back (or "
                              "check `pvecm status`) and retry.")
        raise NotFound(f"No VM {vmid} on any Proxmox node. Check the VM id in the inventory "
                       "against `qm list` on the nodes.")

    def vm_status(self, node: str, vmid: int) -> VM:
        """The current state of a VM on a node (NotFound if it is not there)."""
        op = _Op(f"read the status of VM {vmid}", node=node, vmid=vmid)
        data = self._call("GET", ("nodes", node, "qemu", vmid, "status", "current"), op) or {}
        ha = data.get("ha") or {}
        return VM(vmid=vmid, name=str(data.get("name") or ""), node=node,
                  status=str(data.get("status") or ""), lock=str(data.get("lock") or ""),
                  ha=str(ha.get("state") or "") if ha.get("managed") else "")

    def stop_vm(self, node: str, vmid: int, timeout: float = 120.0,
                hooks: Hooks | None = None) -> bool:
        """Stop a VM hard (fencing) and wait until it is stopped; False if it already was.

        PVE is asked to kill QEMU after STOP_TIMEOUT_SHARE of ``timeout``; the whole call gives up
        with TimedOut after ``timeout`` seconds. An HA-managed VM is stopped through HA, so after
        the task the VM's own status is awaited too.
        """
        hooks = hooks or Hooks()
        deadline = time.monotonic() + timeout
        vm = self.vm_status(node, vmid)
        if vm.status == "stopped":
            hooks.report(Progress(f"VM {vmid} is already stopped", target=f"VM {vmid}",
                                  host=node, status="stopped"))
            return False
        if vm.lock:
            raise Conflict(_locked_message(vmid, node, vm.lock))
        op = _Op(f"stop VM {vmid}", node=node, vmid=vmid)
        pve_timeout = max(1, int(timeout * STOP_TIMEOUT_SHARE))
        upid = self._call("POST", ("nodes", node, "qemu", vmid, "status", "stop"), op,
                          timeout=pve_timeout)
        self._wait_task(node, str(upid), deadline, timeout, hooks)
        self._wait_stopped(node, vmid, deadline, hooks)
        hooks.report(Progress(f"VM {vmid} stopped", target=f"VM {vmid}", host=node,
                              status="stopped"))
        return True

    def _wait_stopped(self, node: str, vmid: int, deadline: float, hooks: Hooks) -> None:
        interval = POLL_FIRST
        while self.vm_status(node, vmid).status != "stopped":
            if time.monotonic() >= deadline:
                raise TimedOut(f"VM {vmid} on node {node} was still running when the wait ran "
                               "out, although its stop task ended (HA may still be acting). "
                               f"Check `ha-manager status` and `qm status {vmid}` on {node}.")
            self._sleep(min(interval, max(deadline - time.monotonic(), 0.0)), hooks,
                        f"the stop of VM {vmid} on node {node}")
            interval = min(interval * 2, POLL_MAX)

    def destroy_vm(self, node: str, vmid: int, timeout: float = 300.0,
                   hooks: Hooks | None = None) -> bool:
        """Destroy a stopped VM with its disks and its HA/backup/replication entries.

        Returns False when the VM is already gone, so a retry never fails; refuses (Refused) a
        running VM and a cluster without quorum.
        """
        hooks = hooks or Hooks()
        deadline = time.monotonic() + timeout
        try:
            vm = self.vm_status(node, vmid)
        except NotFound:
            return self._already_destroyed(node, vmid, hooks)
        if vm.status == "running":
            raise Refused(f"VM {vmid} on node {node} is running: Proxmox destroys only a stopped "
                          "VM. Stop it first (fence it), then destroy it.")
        if vm.lock:
            raise Conflict(_locked_message(vmid, node, vm.lock))
        if not self.cluster_quorate():
            raise Refused(_quorum_message(f"destroy VM {vmid}"))
        op = _Op(f"destroy VM {vmid}", node=node, vmid=vmid)
        params = {"purge": 1, "destroy-unreferenced-disks": 1}
        outcome = self._request("DELETE", ("nodes", node, "qemu", vmid), op, **params)
        if isinstance(outcome.error, NotFound):
            return self._already_destroyed(node, vmid, hooks)
        if outcome.error is not None:
            raise outcome.error
        self._wait_task(node, str(outcome.value), deadline, timeout, hooks)
        hooks.report(Progress(f"VM {vmid} destroyed", target=f"VM {vmid}", host=node,
                              status="destroyed"))
        return True

    def _already_destroyed(self, node: str, vmid: int, hooks: Hooks) -> bool:
        """False once the VM is known to be gone from the whole cluster, not just from ``node``.

        A VM that was migrated is absent from its old node; calling that "destroyed" would let
        a rebuild go on beside a live VM with the same id.
        """
        try:
            elsewhere = self.find_vm(vmid)
        except NotFound:
            hooks.report(Progress(f"VM {vmid} does not exist (already destroyed)",
                                  target=f"VM {vmid}", host=node, status="absent"))
            return False
        if elsewhere.node == node:
            raise AdapterError(f"Proxmox answered that VM {vmid} does not exist on node {node} "
                               "yet still lists it there. Check `qm list` on that node and retry.")
        raise Refused(f"VM {vmid} is not on node {node} but on node {elsewhere.node} (migrated?), "
                      "so it was not destroyed. Correct the node of this VM in the inventory and "
                      "retry.")

    # ---------------------------------------------------------------- tasks

    def wait_task(self, node: str, upid: str, timeout: float = 300.0,
                  hooks: Hooks | None = None) -> dict[str, Any]:
        """Wait for a PVE task to end; returns its final status.

        Raises AdapterError (Conflict for a lock, Refused for lost quorum) if the task failed,
        TimedOut after ``timeout`` seconds and Cancelled once ``hooks.cancelled()`` is true; in
        both of those the task itself keeps running in Proxmox.
        """
        return self._wait_task(node, upid, time.monotonic() + timeout, timeout, hooks or Hooks())

    def _wait_task(self, node: str, upid: str, deadline: float, budget: float,
                   hooks: Hooks) -> dict[str, Any]:
        """wait_task until ``deadline``; ``budget`` is the timeout to name in a TimedOut."""
        op = _Op(f"read the status of task {upid}", node=node)
        interval = POLL_FIRST
        reported = False
        while True:
            status = self._call("GET", ("nodes", node, "tasks", upid, "status"), op) or {}
            if status.get("status") == "stopped":
                return self._task_result(node, upid, status, hooks)
            if not reported:
                hooks.report(self._task_progress(node, upid, status, "running"))
                reported = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimedOut(f"{self._task_label(node, upid, status)} did not finish within "
                               f"{budget:g}s and may still be running. Look it up with "
                               f"`pvenode task status {upid}` on {node} (or under Tasks in the "
                               "web UI).")
            self._sleep(min(interval, remaining), hooks, self._task_label(node, upid, status),
                        upid)
            interval = min(interval * 2, POLL_MAX)

    def task_log(self, node: str, upid: str, limit: int = 20) -> list[str]:
        """The last ``limit`` lines of a task's log."""
        op = _Op(f"read the log of task {upid}", node=node)
        lines: deque[str] = deque(maxlen=max(limit, 0))
        start = 0
        while True:
            page = self._call("GET", ("nodes", node, "tasks", upid, "log"), op, start=start,
                              limit=LOG_PAGE) or []
            lines.extend(str(entry.get("t", "")) for entry in page)
            if len(page) < LOG_PAGE:
                return list(lines)
            start += len(page)

    def _task_result(self, node: str, upid: str, status: dict[str, Any],
                     hooks: Hooks) -> dict[str, Any]:
        exitstatus = str(status.get("exitstatus") or "")
        if TASK_OK.match(exitstatus):
            hooks.report(self._task_progress(node, upid, status, exitstatus))
            return status
        label = self._task_label(node, upid, status)
        vmid = _int_or_none(status.get("id"))
        try:
            tail = self.task_log(node, upid)
        except AdapterError as exc:
            tail = [f"(the task log could not be read: {exc})"]
        log = "\n".join(f"  {line}" for line in tail) or "  (empty)"
        details = f"Task {upid}. Last lines of its log:\n{log}"
        lock = LOCKED.search(exitstatus)
        if lock:
            locked = _locked_message(vmid, node, lock.group(1))
            raise Conflict(f"{label} failed: {locked}\n{details}")
        if NO_QUORUM.search(exitstatus):
            raise Refused(f"{label} failed: {_quorum_message('run it')}\n{details}")
        raise AdapterError(f"{label} failed with exit status {exitstatus!r}. Read the log below "
                           f"(or `pvenode task log {upid}` on {node}), fix the cause and retry.\n"
                           f"{details}")

    @staticmethod
    def _task_label(node: str, upid: str, status: dict[str, Any]) -> str:
        kind, ident = _upid_fields(upid)
        kind = str(status.get("type") or kind or "task")
        ident = str(status.get("id") or ident or "")
        target = f" for VM {ident}" if ident else ""
        return f"Proxmox task {kind}{target} on node {node}"

    @staticmethod
    def _task_progress(node: str, upid: str, status: dict[str, Any], state: str) -> Progress:
        kind, ident = _upid_fields(upid)
        kind = str(status.get("type") or kind)
        ident = str(status.get("id") or ident)
        return Progress(f"Proxmox task {kind}: {state}", target=f"VM {ident}" if ident else "",
                        task=kind, host=node, status=state)

    @staticmethod
    def _sleep(seconds: float, hooks: Hooks, waiting_for: str, upid: str | None = None) -> None:
        """Sleep in short slices, raising Cancelled as soon as the caller asks."""
        end = time.monotonic() + seconds
        while True:
            if hooks.cancelled():
                look = (f" Check it with `pvenode task status {upid}`." if upid else "")
                raise Cancelled(f"Stopped waiting for {waiting_for} on request. Proxmox was not "
                                f"told to stop it, so it may still be running.{look}")
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, CANCEL_CHECK))

    # -------------------------------------------------------------- cluster

    def list_nodes(self) -> list[PveNode]:
        """The cluster's nodes, sorted by name."""
        items = self._call("GET", ("nodes",), _Op("list the Proxmox nodes")) or []
        return sorted((PveNode(name=str(i["node"]), online=i.get("status") == "online")
                       for i in items), key=lambda n: n.name)

    def cluster_quorate(self) -> bool:
        """True if the cluster has quorum (a standalone node always has)."""
        items = self._call("GET", ("cluster", "status"), _Op("read the cluster status")) or []
        for item in items:
            if item.get("type") == "cluster":
                return bool(int(item.get("quorate") or 0))
        return True

    # ------------------------------------------------------------ transport

    def _call(self, method: str, path: tuple[str | int, ...], op: _Op, **params: Any) -> Any:
        outcome = self._request(method, path, op, **params)
        if outcome.error is not None:
            raise outcome.error
        return outcome.value

    def _request(self, method: str, path: tuple[str | int, ...], op: _Op,
                 **params: Any) -> _Outcome:
        """One API request, trying the endpoints in turn (from the last one that answered).

        Another endpoint is tried only when no HTTP answer came; for a write only when the
        connection could not even be made, so a request is never applied twice.
        """
        endpoints = self.config.endpoints
        failures: list[tuple[str, str]] = []
        for step in range(len(endpoints)):
            index = (self._preferred + step) % len(endpoints)
            endpoint = endpoints[index]
            ok, result = self._attempt(endpoint, method, path, params)
            if ok:
                self._preferred = index
                return _Outcome(value=result)
            reason = _connect_failure(result, method, self.config.timeout)
            if reason is None:
                return self._translate(result, endpoint, op)
            failures.append((endpoint, reason))
        return _Outcome(error=Unreachable(self._unreachable_message(failures, op)))

    def _attempt(self, endpoint: str, method: str, path: tuple[str | int, ...],
                 params: dict[str, Any]) -> tuple[bool, Any]:
        """(True, answer) or (False, the vendor exception); never raises a vendor exception."""
        import requests
        from proxmoxer.core import ResourceException

        try:
            resource = self._client(endpoint)([str(part) for part in path])
            return True, getattr(resource, method.lower())(**params)
        except (ResourceException, requests.RequestException, OSError, ValueError) as exc:
            return False, exc

    def _client(self, endpoint: str) -> Any:
        client = self._clients.get(endpoint)
        if client is None:
            from proxmoxer import ProxmoxAPI

            cfg = self.config
            if cfg.ca_file is not None and not os.path.isfile(cfg.ca_file):
                raise OSError("the file does not exist or is not a regular file")
            client = ProxmoxAPI(_netloc(endpoint), backend="https", user=cfg.user,
                                token_name=cfg.token_name, token_value=cfg.token_value,
                                verify_ssl=cfg.ca_file or True, timeout=cfg.timeout)
            self._clients[endpoint] = client
        return client

    def _translate(self, exc: BaseException, endpoint: str, op: _Op) -> _Outcome:
        """The project error for a vendor exception that came with (or instead of) an answer."""
        from proxmoxer.core import ResourceException

        if isinstance(exc, ResourceException):
            return _Outcome(error=self._http_error(exc, endpoint, op), status=exc.status_code)
        if isinstance(exc, OSError) and not _is_requests_error(exc):
            return _Outcome(error=AdapterError(
                f"Cannot use the CA bundle for Proxmox at {endpoint} (`ca_file` = "
                f"{self.config.ca_file!r}): {_short(exc)}. Point `ca_file` at a readable PEM file "
                "holding the CA that signed the Proxmox certificates."))
        if isinstance(exc, OSError) and _is_timeout(exc):
            return _Outcome(error=TimedOut(
                f"Proxmox at {endpoint} did not answer within {self.config.timeout:g}s while "
                f"trying to {op.what}; the request may or may not have been applied. Check the "
                "API's load and the network, and the state of the VM; the operation is safe to "
                "retry."))
        if isinstance(exc, OSError):
            return _Outcome(error=Unreachable(
                f"The connection to Proxmox at {endpoint} failed while trying to {op.what} "
                f"({_short(exc)}); the request may or may not have been applied. Check the "
                "network and the state of the VM; the operation is safe to retry."))
        return _Outcome(error=AdapterError(
            f"Proxmox at {endpoint} gave an unusable answer while trying to {op.what}: "
            f"{_short(exc)}."))

    def _http_error(self, exc: Any, endpoint: str, op: _Op) -> AdapterError:
        code = int(exc.status_code)
        text = str(exc.content or "").strip()
        if exc.errors:
            text += f" ({exc.errors})"
        if code == 401:
            return AdapterError(
                f"Proxmox at {endpoint} rejected the API token {self.config.token_id} "
                f"({code} {text}). Check that the token exists and has not expired "
                f"(`pveum user token list {self.config.user}`) and that the configured secret is "
                "the one shown when the token was created.")
        if code == 403:
            return AdapterError(
                f"The API token {self.config.token_id} may not {op.what}: {text}. Grant the named "
                "privilege on that path to the token (and to its user when the token has "
                "privilege separation).")
        if code in (595, 596):
            node = f"Node {op.node}" if op.node else "A Proxmox node"
            return Unreachable(
                f"{node} is offline or unreachable from the API endpoint {endpoint} ({code} "
                f"{text}) while trying to {op.what}. Check that the node is up and in the "
                "cluster (`pvecm status`), or act on a VM of another node.")
        lock = LOCKED.search(text)
        if lock:
            return Conflict(_locked_message(op.vmid, op.node, lock.group(1)))
        if NO_QUORUM.search(text):
            return Refused(_quorum_message(op.what))
        if MISSING.search(text):
            return NotFound(f"{_vm_label(op.vmid, op.node)} does not exist ({text}). Check the "
                            "VM id and node in the inventory against `qm list` on the node.")
        if RUNNING_DESTROY.search(text):
            return Refused(f"{_vm_label(op.vmid, op.node)} is running, so Proxmox refuses to "
                           "destroy it: stop it first.")
        if CONFIG_LOCK_TIMEOUT.search(text):
            return Conflict(f"Another Proxmox task holds the config lock of "
                            f"{_vm_label(op.vmid, op.node)} ({text}). Wait for it to finish "
                            "(see Tasks in the web UI) and retry.")
        return AdapterError(f"Proxmox at {endpoint} failed to {op.what}: {code} {text}.")

    def _unreachable_message(self, failures: list[tuple[str, str]], op: _Op) -> str:
        tried = "; ".join(f"{endpoint}: {reason}" for endpoint, reason in failures)
        ca = self.config.ca_file or "unset, so the system CA store is used"
        return (f"Cannot reach the Proxmox API to {op.what}. Tried {tried}. Check the `endpoints` "
                "setting and that pveproxy answers there; for a TLS error check that "
                f"`ca_file` ({ca}) holds the CA that signed the Proxmox certificate.")


def _upid_fields(upid: str) -> tuple[str, str]:
    """(task type, id) from a UPID, or empty strings when it is not one."""
    parts = upid.split(":")
    if len(parts) >= 8 and parts[0] == "UPID":
        return parts[5], parts[6]
    return "", ""


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
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


def _connect_failure(exc: BaseException, method: str, timeout: float) -> str | None:
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

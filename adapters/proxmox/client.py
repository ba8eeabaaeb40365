"""The PVE API transport: settings, endpoint failover and one request at a time (proxmoxer).

proxmoxer and requests are imported on first use only, so importing this module stays cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from adapters.errors import AdapterError, Unreachable
from adapters.proxmox.errors import Op, connect_failure, translate, unreachable_message


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


class PveClient:
    """Requests to the PVE API, trying the configured endpoints in turn.

    The base of ``adapters.proxmox.vms.Proxmox``; the proxmoxer clients are created on first use.
    """

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

    def _call(self, method: str, path: tuple[str | int, ...], op: Op, /, **params: Any) -> Any:
        outcome = self._request(method, path, op, **params)
        if outcome.error is not None:
            raise outcome.error
        return outcome.value

    def _request(self, method: str, path: tuple[str | int, ...], op: Op, /,
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
            reason = connect_failure(result, method, self.config.timeout)
            if reason is None:
                error, status = translate(result, endpoint, op, self.config)
                return _Outcome(error=error, status=status)
            failures.append((endpoint, reason))
        return _Outcome(error=Unreachable(unreachable_message(failures, op, self.config)))

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

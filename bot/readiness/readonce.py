"""One read of each source per readiness report.

The report asks the same things many times (every node's preflight lists the nodes and the
Longhorn volumes; the backup facts list the volumes again). ``ReadOnceKube`` answers a repeated
read from the first answer (an error too), so a report of 200 volumes lists them once and sees
one consistent picture; it refuses every write, since a readiness report changes nothing.
``ReadingServices`` hands the runbooks' own preflight checks this view in place of the worker's
services.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from adapters.errors import AdapterError
from adapters.kubernetes.client import Kube

if TYPE_CHECKING:
    from adapters.s3 import ObjectStore
    from bot.worker.services import Services

T = TypeVar("T")
READS = ("list_", "read_", "get_")


class ReadOnceKube:
    """A Kube whose reads are each made once; writes are refused."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._memo: dict[tuple[Any, ...], tuple[bool, Any]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kube, name)

    # Kube's own helpers, bound to this view so that their calls go through `call` below.
    get_object = Kube.get_object
    list_objects = Kube.list_objects

    def call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        name = getattr(fn, "__name__", "")
        if not name.startswith(READS):
            raise AdapterError(f"a readiness report only reads; {name or 'a write'} refused")
        key = (getattr(getattr(fn, "__self__", None), "__class__", None), name, args,
               tuple(sorted((k, repr(v)) for k, v in kw.items())))
        with self._lock:
            if key not in self._memo:
                try:
                    self._memo[key] = (True, self._kube.call(fn, *args, **kw))
                except AdapterError as exc:
                    self._memo[key] = (False, exc)
            ok, value = self._memo[key]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]


class ReadingServices:
    """The worker's services with the cluster seen through one ReadOnceKube and one store per
    kind; everything else (Proxmox, Terraform, the records) is the worker's own."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self.kube = ReadOnceKube(services.kube)
        self._stores: dict[str, ObjectStore] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._services, name)

    def store(self, kind: str) -> ObjectStore:
        if kind not in self._stores:
            self._stores[kind] = self._services.store(kind)
        return self._stores[kind]

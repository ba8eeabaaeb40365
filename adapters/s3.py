"""One object-store API over S3 (boto3) and a mounted path (NFS export or plain directory).

Keys are always relative to the store's base (the bucket prefix, or the mounted directory) and
use ``/``. Listings come back in S3's order (bytewise on the UTF-8 key) on both back ends, so code
above this module never needs to know where the bytes live.

``ObjectStore.requests`` counts every request sent: on S3 each HTTP request (retries included),
on a path each directory read, stat, read, write or unlink. Scans report it so their cost can be
checked. The back ends are ``adapters.store_s3`` and ``adapters.store_path``; where a store is,
``StoreConfig``, lives in ``adapters.store_config`` (importable from here).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from adapters.store_config import ObjectInfo, StoreConfig
from adapters.store_path import PathBackend
from adapters.store_s3 import S3Backend

__all__ = ["DELETE_BATCH", "ObjectInfo", "ObjectStore", "StoreConfig"]

DELETE_BATCH = 1000  # the most keys one DeleteObjects request accepts


class ObjectStore:
    """List, read, write and delete objects on S3 or a mounted path, with one API for both."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.requests = 0
        self._backend: S3Backend | PathBackend
        if config.scheme == "s3":
            self._backend = S3Backend(config, self._count)
        else:
            self._backend = PathBackend(Path(config.base), self._count)

    def __repr__(self) -> str:
        return f"ObjectStore({self.location!r})"

    @property
    def location(self) -> str:
        """The store as an operator would name it (never with credentials)."""
        return self._backend.location

    def _count(self, n: int = 1) -> None:
        with self._lock:
            self.requests += n

    def list(self, prefix: str = "", delimiter: str | None = None) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order, fetched page by page.

        With a ``delimiter`` only the objects directly under ``prefix`` come back (the rolled-up
        prefixes are left out: see ``list_prefixes``).
        """
        return self._backend.list(prefix, delimiter)

    def list_prefixes(self, prefix: str = "", delimiter: str = "/") -> list[str]:
        """The "directories" directly under ``prefix``: full prefixes ending in ``delimiter``."""
        return self._backend.list_prefixes(prefix, delimiter)

    def read(self, key: str) -> bytes:
        """The object's content; NotFound if there is none."""
        return self._backend.read(key)

    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size and time, or None if it does not exist."""
        return self._backend.stat(key)

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def download(self, key: str, path: str | os.PathLike[str]) -> int:
        """Stream the object into the local file ``path`` (never whole in memory); returns its
        size. NotFound if there is no such object."""
        return self._backend.download(key, Path(path))

    def upload(self, key: str, data: bytes | str | os.PathLike[str]) -> None:
        """Store ``data`` (bytes, or the path of a local file) under ``key``, replacing any."""
        if isinstance(data, bytes | bytearray | memoryview):
            self._backend.put(key, bytes(data))
        else:
            self._backend.put_file(key, Path(data))

    def may_write(self, key: str) -> bool:
        """Whether drbot may write here, asked without writing (see the backends' ``may_write``).

        ``key`` must name an existing object; True means writing is allowed, False that the store
        rewrote that object with its own content (it ignores conditional writes)."""
        return self._backend.may_write(key)

    def delete(self, keys: Iterable[str]) -> int:
        """Delete the keys (missing ones are fine); returns how many were asked for."""
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), DELETE_BATCH):
            self._backend.delete(keys[start:start + DELETE_BATCH])
        return len(keys)

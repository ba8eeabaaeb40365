"""Where an object store is and how to reach it (``StoreConfig``), and what it holds
(``ObjectInfo``): shared by the store's facade (``adapters.s3``) and its two back ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlparse

from adapters.errors import AdapterError


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key relative to the store's base, its size and last change."""

    key: str
    size: int
    modified: datetime


@dataclass
class StoreConfig:
    """Where a store is and how to reach it.

    ``url`` is ``s3://bucket[/prefix]``, ``nfs:///mount/point`` (an NFS export already mounted
    there) or ``file:///path``. The other fields concern S3 only. TLS is always verified:
    ``ca_file`` adds a CA bundle for a private endpoint, it never turns verification off.
    """

    url: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    page_size: int = 1000
    max_attempts: int = 3
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        parsed = urlparse(self.url)
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise AdapterError(
                    f"store URL {self.url!r} names no bucket: write s3://bucket/prefix")
        elif parsed.scheme in ("nfs", "file"):
            if parsed.netloc:
                raise AdapterError(
                    f"store URL {self.url!r} names a server: mount the export first and give "
                    "the mount point as nfs:///mount/point")
            if not parsed.path.startswith("/"):
                raise AdapterError(f"store URL {self.url!r} needs an absolute path")
        else:
            raise AdapterError(
                f"store URL {self.url!r} is not supported: use s3://bucket/prefix, "
                "nfs:///mount/point or file:///path")
        if not 1 <= self.page_size <= 1000:
            raise AdapterError(f"page_size {self.page_size} must be between 1 and 1000")

    @property
    def scheme(self) -> str:
        return urlparse(self.url).scheme

    @property
    def bucket(self) -> str:
        return urlparse(self.url).netloc

    @property
    def base(self) -> str:
        """The key prefix inside the bucket (ending in ``/`` unless empty), or the local path."""
        path = urlparse(self.url).path
        if self.scheme != "s3":
            return path
        path = path.strip("/")
        return f"{path}/" if path else ""

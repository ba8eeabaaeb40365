"""One object-store API over S3 (boto3) and a mounted path (NFS export or plain directory).

Keys are always relative to the store's base (the bucket prefix, or the mounted directory) and
use ``/``. Listings come back in S3's order (bytewise on the UTF-8 key) on both back ends, so code
above this module never needs to know where the bytes live.

``ObjectStore.requests`` counts every request sent: on S3 each HTTP request (retries included),
on a path each directory read, stat, read, write or unlink. Scans report it so their cost can be
checked.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from adapters.errors import AdapterError, Denied, NotFound, TimedOut, Unreachable

T = TypeVar("T")

_TMP_PREFIX = ".drbot-upload-"
DELETE_BATCH = 1000  # the most keys one DeleteObjects request accepts
_UNREACHABLE_ERRNOS = {errno.ESTALE, errno.EIO, errno.ENOTCONN, errno.EHOSTDOWN, errno.ETIMEDOUT}


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


class ObjectStore:
    """List, read, write and delete objects on S3 or a mounted path, with one API for both."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.requests = 0
        self._backend: _S3 | _Local
        if config.scheme == "s3":
            self._backend = _S3(config, self._count)
        else:
            self._backend = _Local(Path(config.base), self._count)

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


# --- S3 -----------------------------------------------------------------------------------------

class _S3:
    def __init__(self, config: StoreConfig, count: Callable[[int], None]) -> None:
        self.config = config
        self.bucket = config.bucket
        self.base = config.base
        self.location = f"s3://{self.bucket}/{self.base}"
        self._count = count
        self._client_lock = threading.Lock()
        self._client_obj: Any = None
        self._bucket_known = False

    @property
    def _client(self) -> Any:
        with self._client_lock:
            if self._client_obj is None:
                self._client_obj = self._make_client()
            return self._client_obj

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        cfg = self.config
        options: dict[str, Any] = {
            "retries": {"max_attempts": cfg.max_attempts, "mode": "standard"},
            "connect_timeout": cfg.connect_timeout,
            "read_timeout": cfg.read_timeout,
            "max_pool_connections": 32,
        }
        if cfg.endpoint_url:
            options["s3"] = {"addressing_style": "path"}  # MinIO, Ceph, Garage and friends
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=cfg.endpoint_url,
            region_name=cfg.region or "us-east-1",
            aws_access_key_id=cfg.access_key,
            aws_secret_access_key=cfg.secret_key,
            verify=cfg.ca_file or True,
            config=Config(**options),
        )
        client.meta.events.register("before-send.s3", self._on_send)
        return client

    def _on_send(self, **_: Any) -> None:
        self._count(1)

    def _call(self, action: str, target: str, fn: Callable[[], T]) -> T:
        """Run one client call, translating every vendor exception into the project's errors."""
        try:
            return fn()
        except Exception as exc:  # every vendor error is translated at this boundary
            raise _translate(exc, self.config, action, target) from exc

    def _key(self, key: str) -> str:
        return self.base + key

    def _rel(self, key: str) -> str:
        return key[len(self.base):]

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket, "Prefix": self._key(prefix), "MaxKeys": self.config.page_size}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        while True:
            page = self._call("ListObjectsV2", prefix,
                              lambda: self._client.list_objects_v2(**kwargs))
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token

    def list(self, prefix: str, delimiter: str | None) -> Iterator[ObjectInfo]:
        for page in self._pages(prefix, delimiter):
            for item in page.get("Contents", []):
                yield ObjectInfo(self._rel(item["Key"]), int(item["Size"]),
                                 _aware(item["LastModified"]))

    def list_prefixes(self, prefix: str, delimiter: str) -> list[str]:
        return [self._rel(p["Prefix"]) for page in self._pages(prefix, delimiter)
                for p in page.get("CommonPrefixes", [])]

    def read(self, key: str) -> bytes:
        def get() -> bytes:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            try:
                return body.read()
            finally:
                body.close()

        return self._call("GetObject", key, get)

    def download(self, key: str, path: Path) -> int:
        self._call("GetObject", key, lambda: self._client.download_file(
            self.bucket, self._key(key), str(path)))
        return path.stat().st_size

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self._call("HeadObject", key,
                              lambda: self._client.head_object(Bucket=self.bucket,
                                                               Key=self._key(key)))
        except NotFound:
            self._check_bucket()  # a HEAD 404 does not say whether the key or the bucket is gone
            return None
        return ObjectInfo(key, int(head["ContentLength"]), _aware(head["LastModified"]))

    def _check_bucket(self) -> None:
        if self._bucket_known:
            return
        self._call("HeadBucket", "", lambda: self._client.head_bucket(Bucket=self.bucket))
        self._bucket_known = True

    def put(self, key: str, data: bytes) -> None:
        self._call("PutObject", key, lambda: self._client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data))

    def may_write(self, key: str) -> bool:
        """A PutObject of ``key``'s own content with ``If-None-Match: *`` on that existing key:
        S3 checks the caller's permission first (403) and the condition second (412
        PreconditionFailed), so 412 proves the right to write and writes nothing (AWS S3 user
        guide, "conditional writes"). A store that ignores the condition gets the same bytes
        back, so the object keeps its content; the answer False says that it happened."""
        body = self.read(key)
        try:
            self._call("PutObject", key, lambda: self._client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=body, IfNoneMatch="*"))
        except AdapterError as exc:
            if "PreconditionFailed" in str(exc) or "412" in str(exc) or \
                    "precondition" in str(exc).lower():
                return True
            raise
        return False

    def put_file(self, key: str, path: Path) -> None:
        if not path.is_file():
            raise NotFound(f"cannot upload {path} to {self.location}{key}: no such local file")
        self._call("PutObject", key, lambda: self._client.upload_file(
            str(path), self.bucket, self._key(key)))

    def delete(self, keys: list[str]) -> None:
        if not keys:
            return
        objects = [{"Key": self._key(k)} for k in keys]
        result = self._call("DeleteObjects", keys[0], lambda: self._client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}))
        errors = result.get("Errors") or []
        if errors:
            first = errors[0]
            what = (f"{len(errors)} of {len(keys)} objects (first: "
                    f"{self._rel(first.get('Key', ''))!r})")
            if first.get("Code") in _DENIED:
                raise Denied(
                    f"access denied to bucket {self.bucket!r} for DeleteObjects on {what}: "
                    "grant the key s3:DeleteObject in the bucket or IAM policy")
            raise AdapterError(
                f"could not delete {what} in {self.location}: {first.get('Code')} "
                f"{first.get('Message', '')}; check object lock settings and try again")


def _aware(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


_DENIED = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "403", "Forbidden"}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                    "ExpiredToken", "TokenRefreshRequired"}
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}


def _translate(exc: Exception, config: StoreConfig, action: str, target: str) -> AdapterError:
    """Turn a boto3/botocore exception into one of the project's errors, without secrets."""
    from botocore import exceptions as bex

    where = f"s3://{config.bucket}/{config.base}{target}"
    endpoint = config.endpoint_url or "AWS S3"
    error: AdapterError
    if isinstance(exc, bex.SSLError):
        error = Unreachable(
            f"TLS verification failed talking to {endpoint} ({action} {where}): give the "
            "endpoint's CA bundle as ca_file, or fix the server certificate")
    elif isinstance(exc, bex.ConnectTimeoutError | bex.EndpointConnectionError
                    | bex.ConnectionClosedError):
        error = Unreachable(
            f"S3 endpoint {endpoint} is unreachable ({action} {where}): check the endpoint URL, "
            "the network and that the service is up")
    elif isinstance(exc, bex.ReadTimeoutError):
        error = TimedOut(
            f"S3 endpoint {endpoint} did not answer in time ({action} {where}): the service "
            "may be overloaded; try again")
    elif isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        error = AdapterError(
            f"no S3 credentials for bucket {config.bucket!r}: set access_key and secret_key "
            "in the store configuration")
    elif isinstance(exc, bex.ClientError):
        error = _translate_client_error(exc, config, action, target, where)
    elif isinstance(exc, bex.ParamValidationError):
        error = AdapterError(f"invalid request {action} {where}: {exc}")
    elif isinstance(exc, bex.BotoCoreError):
        error = AdapterError(f"S3 {action} {where} failed: {exc}")
    else:
        cause = _botocore_cause(exc)
        if cause is not None:  # boto3's transfer manager wraps the real error
            return _translate(cause, config, action, target)
        if type(exc).__module__.split(".")[0] not in ("boto3", "s3transfer"):
            raise exc  # not a vendor error: a bug, let it surface as one
        error = AdapterError(f"S3 {action} {where} failed: {exc}")
    return _redacted(error, config)


def _botocore_cause(exc: BaseException) -> Exception | None:
    from botocore import exceptions as bex

    current = exc.__cause__ or exc.__context__
    while current is not None:
        if isinstance(current, bex.BotoCoreError | bex.ClientError):
            return current
        current = current.__cause__ or current.__context__
    return None


def _translate_client_error(exc: Any, config: StoreConfig, action: str, target: str,
                            where: str) -> AdapterError:
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    message = str(err.get("Message", ""))
    bucket = config.bucket
    if code == "NoSuchBucket" or (action == "HeadBucket" and status == 404):
        return NotFound(
            f"bucket {bucket!r} does not exist at {config.endpoint_url or 'AWS S3'}: "
            "create it or fix the store URL")
    if code in _MISSING_KEY or status == 404:
        return NotFound(f"{where} does not exist")
    if code in _BAD_CREDENTIALS:
        return AdapterError(
            f"S3 rejected the credentials for bucket {bucket!r} ({code} on {action}): check "
            "access_key and secret_key")
    if code in _DENIED or status == 403:
        return Denied(
            f"access denied to bucket {bucket!r} for {action} on {where}: grant the key that "
            "permission in the bucket or IAM policy")
    if code in ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout") \
            or status >= 500:
        error = AdapterError(
            f"S3 {action} {where} failed with {code or status} ({message}): the service is "
            "struggling; try again later")
        error.temporary = True
        return error
    return AdapterError(f"S3 {action} {where} failed: {code or status} {message}".rstrip())


def _redacted(error: AdapterError, config: StoreConfig) -> AdapterError:
    """Belt and braces: no message may ever carry the secret key.

    Secrets shorter than any real S3 secret (MinIO's minimum is 8) are left alone: replacing
    every "b" in a message would hide nothing and make it unreadable.
    """
    secret = config.secret_key
    if secret and len(secret) >= 8 and secret in str(error):
        redacted = type(error)(str(error).replace(secret, "***"))
        redacted.temporary = error.temporary
        return redacted
    return error


# --- a mounted path (NFS export or local directory) --------------------------------------------

class _Local:
    def __init__(self, base: Path, count: Callable[[int], None]) -> None:
        self.base = base
        self.location = str(base)
        self._count = count

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) \
                or "\0" in key:
            raise AdapterError(f"invalid object key {key!r} for {self.location}")
        return self.base.joinpath(*parts)

    def may_write(self, key: str) -> bool:
        """The directory holding ``key`` is writable for this process (``access(2)``)."""
        self._check_base()
        directory = self._path(key).parent
        if not os.access(directory, os.W_OK | os.X_OK):
            raise AdapterError(f"permission denied to write in {directory}: give drbot's user "
                               "write access to the path")
        return True

    def _check_base(self) -> None:
        if not self.base.is_dir():
            raise NotFound(
                f"{self.location} does not exist or is not a directory: mount the NFS export "
                "there or fix the store URL")

    def _os_error(self, exc: OSError, action: str, target: str) -> AdapterError:
        where = f"{self.location}/{target}".rstrip("/")
        if isinstance(exc, PermissionError):
            return AdapterError(
                f"permission denied to {action} {where}: give drbot's user access to the path")
        if exc.errno in _UNREACHABLE_ERRNOS:
            return Unreachable(
                f"{where} cannot be reached ({exc.strerror}) while trying to {action}: check "
                "the NFS mount and the server")
        return AdapterError(f"cannot {action} {where}: {exc.strerror or exc}")

    def _entries(self, directory: str) -> list[tuple[str, bool, os.stat_result]]:
        """(name, is_dir, stat) of one directory's entries; [] if the directory is absent."""
        self._count(1)
        path = self._path(directory) if directory else self.base
        try:
            with os.scandir(path) as it:
                out = []
                for entry in it:
                    if entry.name.startswith(_TMP_PREFIX):
                        continue  # another writer's file, not yet renamed into place
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                        out.append((entry.name, is_dir, entry.stat(follow_symlinks=False)))
                    except FileNotFoundError:
                        continue  # removed while we looked
                return out
        except (FileNotFoundError, NotADirectoryError):
            self._check_base()
            return []
        except OSError as exc:
            raise self._os_error(exc, "list", directory) from exc

    def _walk(self, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
        """Every file whose key starts with ``prefix`` (unordered)."""
        directory, _, start = prefix.rpartition("/")
        stack = [(directory, start)]
        while stack:
            current, name_prefix = stack.pop()
            for name, is_dir, st in self._entries(current):
                if not name.startswith(name_prefix):
                    continue
                key = f"{current}/{name}" if current else name
                if is_dir:
                    stack.append((key, ""))
                elif _is_regular(st):
                    yield key, st

    def list(self, prefix: str, delimiter: str | None) -> Iterator[ObjectInfo]:
        if delimiter == "/":
            directory, _, start = prefix.rpartition("/")
            found = [(f"{directory}/{name}" if directory else name, st)
                     for name, is_dir, st in self._entries(directory)
                     if not is_dir and name.startswith(start) and _is_regular(st)]
        else:
            found = [(key, st) for key, st in self._walk(prefix)
                     if not delimiter or delimiter not in key[len(prefix):]]
        for key, st in sorted(found, key=lambda item: item[0].encode()):
            yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def list_prefixes(self, prefix: str, delimiter: str) -> list[str]:
        if delimiter == "/":
            directory, _, start = prefix.rpartition("/")
            found = {f"{directory}/{name}/" if directory else f"{name}/"
                     for name, is_dir, _ in self._entries(directory)
                     if is_dir and name.startswith(start)}
        else:
            found = set()
            for key, _ in self._walk(prefix):
                rest = key[len(prefix):]
                if delimiter in rest:
                    found.add(prefix + rest[:rest.index(delimiter) + len(delimiter)])
        return sorted(found, key=str.encode)

    def read(self, key: str) -> bytes:
        path = self._path(key)
        self._count(1)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self._check_base()
            raise NotFound(f"{self.location}/{key} does not exist") from None
        except OSError as exc:
            raise self._os_error(exc, "read", key) from exc

    def download(self, key: str, path: Path) -> int:
        source = self._path(key)
        self._count(1)
        try:
            with source.open("rb") as src, path.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self._check_base()
            raise NotFound(f"{self.location}/{key} does not exist") from None
        except OSError as exc:
            raise self._os_error(exc, "read", key) from exc
        return path.stat().st_size

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        self._count(1)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            self._check_base()
            return None
        except OSError as exc:
            raise self._os_error(exc, "stat", key) from exc
        if not _is_regular(st):
            return None
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def _write(self, key: str, writer: Callable[[int], None]) -> None:
        """Write atomically (temporary file, then rename) so a reader never sees half a file."""
        self._check_base()
        path = self._path(key)
        self._count(1)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
            try:
                writer(fd)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise self._os_error(exc, "write", key) from exc

    def put(self, key: str, data: bytes) -> None:
        def write(fd: int) -> None:
            with os.fdopen(fd, "wb") as out:
                out.write(data)

        self._write(key, write)

    def put_file(self, key: str, path: Path) -> None:
        if not path.is_file():
            raise NotFound(f"cannot upload {path} to {self.location}/{key}: no such local file")

        def write(fd: int) -> None:
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)

        self._write(key, write)

    def delete(self, keys: list[str]) -> None:
        self._check_base()
        for key in keys:
            path = self._path(key)
            self._count(1)
            try:
                path.unlink(missing_ok=True)
            except IsADirectoryError:
                continue
            except OSError as exc:
                raise self._os_error(exc, "delete", key) from exc
            self._prune_dirs(path.parent)

    def _prune_dirs(self, directory: Path) -> None:
        """Remove directories left empty (S3 has no directories, so none should linger)."""
        while directory != self.base and self.base in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


def _is_regular(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)

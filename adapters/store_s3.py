"""The object store on S3 (boto3): paged listings, reads, streamed downloads, writes, batched
deletes, and every boto3/botocore error turned into the project's errors without secrets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from adapters.errors import AdapterError, Denied, NotFound, TimedOut, Unreachable
from adapters.store_config import ObjectInfo, StoreConfig

T = TypeVar("T")

_loader_lock = threading.Lock()
_loader: Any = None


def boto3_session() -> Any:
    """A new boto3 session (its own credentials and settings, read now) sharing this process's
    one botocore data loader: each new session otherwise parses botocore's S3 service model and
    endpoint rules again, about 0.1 s of CPU per client (`/dr doctor` makes one per store).

    The loader only reads botocore's read-only model files, so sharing it shares no credentials;
    it is what clients of one session share anyway."""
    import boto3
    import botocore.session
    from botocore.loaders import create_loader

    global _loader
    with _loader_lock:
        core = botocore.session.get_session()
        if _loader is None:
            _loader = create_loader(core.get_config_variable("data_path"))
        core.register_component("data_loader", _loader)
        session = boto3.session.Session(botocore_session=core)
        # boto3 appends its data folder to the loader's search paths on every new session
        _loader.search_paths[:] = list(dict.fromkeys(_loader.search_paths))
    return session


class S3Backend:
    """The store's operations on an S3 bucket and prefix."""

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
        client = boto3_session().client(
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

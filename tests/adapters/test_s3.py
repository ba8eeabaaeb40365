"""ObjectStore against moto's S3 server (boto3 over HTTP) and against a directory (nfs:///)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from adapters.errors import AdapterError, Denied, NotFound, Unreachable
from adapters.s3 import ObjectStore, StoreConfig
from lab.fakes.s3 import LIST_ACTIONS, S3Server, bucket_arn
from lab.servers import dead_port


@pytest.fixture(params=["s3", "nfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """The same tests run on a fresh moto bucket and on a directory standing in for a mount."""
    if request.param == "s3":
        return request.getfixturevalue("s3_store")
    return ObjectStore(StoreConfig(f"nfs://{tmp_path}"))


def _put_many(store: ObjectStore, keys: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: store.upload(k, k.encode()), keys))


# --- the API on both back ends ------------------------------------------------------------------

def test_upload_read_stat_exists(store: ObjectStore, tmp_path: Path) -> None:
    store.upload("a/b/one.txt", b"hello")
    local = tmp_path / "local.bin"
    local.write_bytes(b"x" * 2048)
    store.upload("a/two.bin", local)

    assert store.read("a/b/one.txt") == b"hello"
    assert store.read("a/two.bin") == b"x" * 2048
    info = store.stat("a/two.bin")
    assert info is not None and info.key == "a/two.bin" and info.size == 2048
    assert info.modified.tzinfo is not None
    assert abs(info.modified - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert store.exists("a/b/one.txt")
    assert not store.exists("a/b/missing.txt")
    assert store.stat("a/b") is None  # a "directory" is not an object

    store.upload("a/b/one.txt", b"replaced")
    assert store.read("a/b/one.txt") == b"replaced"


def test_read_missing_names_the_key(store: ObjectStore) -> None:
    store.upload("present", b"1")
    with pytest.raises(NotFound, match="dir/absent.cfg"):
        store.read("dir/absent.cfg")


def test_list_in_key_order_with_and_without_delimiter(store: ObjectStore) -> None:
    keys = ["v/a", "v/b/1", "v/b/2", "v/b-x", "v/c/d/e", "w/z", "va"]
    _put_many(store, keys)

    assert [o.key for o in store.list("v/")] == ["v/a", "v/b-x", "v/b/1", "v/b/2", "v/c/d/e"]
    assert [o.key for o in store.list("v/", delimiter="/")] == ["v/a", "v/b-x"]
    assert [o.key for o in store.list("v/b")] == ["v/b-x", "v/b/1", "v/b/2"]
    assert [o.key for o in store.list("v")] == ["v/a", "v/b-x", "v/b/1", "v/b/2", "v/c/d/e", "va"]
    assert [o.key for o in store.list("nothing/")] == []
    assert [(o.key, o.size) for o in store.list("w/")] == [("w/z", 3)]


def test_list_prefixes(store: ObjectStore) -> None:
    _put_many(store, ["v/a", "v/b/1", "v/b/2", "v/c/d/e", "v/cc/x", "top"])

    assert store.list_prefixes("v/") == ["v/b/", "v/c/", "v/cc/"]
    assert store.list_prefixes("v/c") == ["v/c/", "v/cc/"]
    assert store.list_prefixes("") == ["v/"]
    assert store.list_prefixes("none/") == []


def test_delete_and_requests_counter(store: ObjectStore) -> None:
    _put_many(store, ["d/1", "d/2", "d/sub/3", "keep"])
    before = store.requests
    store.read("keep")
    assert store.requests == before + 1

    assert store.delete(["d/1", "d/sub/3", "d/never-existed"]) == 3
    assert [o.key for o in store.list("")] == ["d/2", "keep"]
    assert store.list_prefixes("d/") == []  # no empty "directory" lingers on a mount either
    assert store.delete([]) == 0


def test_pagination_and_batched_delete(store: ObjectStore) -> None:
    """More than 1000 keys, read in pages of 100 and deleted in batches of 1000."""
    small_pages = ObjectStore(StoreConfig(**{**store.config.__dict__, "page_size": 100}))
    keys = [f"many/{i:05d}" for i in range(1050)] + [f"dirs/{i:03d}/x" for i in range(120)]
    _put_many(small_pages, keys)

    before = small_pages.requests
    listed = [o.key for o in small_pages.list("many/")]
    assert listed == keys[:1050]
    if store.config.scheme == "s3":
        assert small_pages.requests - before == 11  # ceil(1050 / 100) pages

    before = small_pages.requests
    prefixes = small_pages.list_prefixes("dirs/")
    assert prefixes == [f"dirs/{i:03d}/" for i in range(120)]
    if store.config.scheme == "s3":
        assert small_pages.requests - before == 2

    before = small_pages.requests
    small_pages.delete(keys[:1050])
    if store.config.scheme == "s3":
        assert small_pages.requests - before == 2  # 1000 + 50 keys per DeleteObjects
    assert list(small_pages.list("many/")) == []


# --- configuration ------------------------------------------------------------------------------

@pytest.mark.parametrize("url, fix", [
    ("s3://", "names no bucket"),
    ("nfs://server:/export", "mount the export"),
    ("nfs://relative", "mount the export"),
    ("ftp://host/x", "not supported"),
])
def test_bad_urls_are_explained(url: str, fix: str) -> None:
    with pytest.raises(AdapterError, match=fix):
        StoreConfig(url)


def test_prefix_in_the_url_is_the_base_of_every_key(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    store = s3_server.store(bucket, "team/backups/")
    store.upload("x/y", b"1")
    raw = s3_server.client().list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in raw["Contents"]] == ["team/backups/x/y"]
    assert [o.key for o in store.list("")] == ["x/y"]
    assert store.location == f"s3://{bucket}/team/backups/"


# --- failures on S3 -----------------------------------------------------------------------------

def test_missing_bucket_is_not_found_naming_it(s3_server: S3Server, tmp_path: Path) -> None:
    store = s3_server.store("no-such-bucket-here")
    local = tmp_path / "file"
    local.write_bytes(b"1")
    for call in (lambda: list(store.list("x/")), lambda: store.read("k"),
                 lambda: store.exists("k"), lambda: store.upload("k", b"1"),
                 lambda: store.upload("k", local), lambda: store.delete(["k"]),
                 lambda: store.list_prefixes("")):
        with pytest.raises(NotFound, match="bucket 'no-such-bucket-here' does not exist"):
            call()


def test_endpoint_down_is_unreachable(s3_server: S3Server) -> None:
    dead = f"http://127.0.0.1:{dead_port()}"
    store = ObjectStore(StoreConfig("s3://bucket", endpoint_url=dead, access_key="a-key-id",
                                    secret_key="a-secret-key", max_attempts=1,
                                    connect_timeout=1))
    with pytest.raises(Unreachable, match="unreachable") as info:
        store.read("k")
    assert dead in str(info.value) and info.value.temporary


@pytest.fixture
def iam_enforced(s3_server: S3Server) -> Iterator[None]:
    """Switch moto to checking signatures and IAM policies, through its own HTTP API."""
    url = f"{s3_server.endpoint_url}/moto-api/reset-auth"
    requests.post(url, data=b"0", timeout=10).raise_for_status()
    try:
        yield
    finally:
        requests.post(url, data=b"inf", timeout=10).raise_for_status()


def test_access_denied_names_bucket_and_action(own_s3: S3Server) -> None:
    s3_server = own_s3
    bucket = s3_server.new_bucket()
    s3_server.store(bucket).upload("secret.cfg", b"1")
    access, secret = s3_server.iam_user(f"lister-{bucket}", LIST_ACTIONS, (bucket_arn(bucket),))
    s3_server.enforce_iam()
    store = s3_server.store(bucket, access_key=access, secret_key=secret)

    assert [o.key for o in store.list("")] == ["secret.cfg"]
    with pytest.raises(Denied) as info:  # a permission to grant, not a key to change
        store.read("secret.cfg")
    message = str(info.value)
    assert "access denied" in message and repr(bucket) in message and "GetObject" in message
    assert secret not in message
    with pytest.raises(Denied, match="access denied.*DeleteObjects"):
        store.delete(["secret.cfg"])


def test_secret_never_in_repr_or_errors(s3_server: S3Server, request: Any) -> None:
    secret = "Sup3r-S3cret-Value-" + "x" * 20
    config = StoreConfig("s3://some-bucket/p", endpoint_url=s3_server.endpoint_url,
                         access_key="AKIAEXAMPLE", secret_key=secret)
    assert secret not in repr(config) and "AKIAEXAMPLE" not in repr(config)
    assert secret not in repr(ObjectStore(config))

    failures: list[BaseException] = []
    for cfg in (config,
                StoreConfig("s3://x-bucket", endpoint_url=f"http://127.0.0.1:{dead_port()}",
                            access_key="a-key-id", secret_key=secret, max_attempts=1)):
        with pytest.raises(AdapterError) as info:
            ObjectStore(cfg).read("k")
        failures.append(info.value)

    bucket = s3_server.new_bucket()
    access, _ = s3_server.iam_user(f"lister-{bucket}", LIST_ACTIONS, (bucket_arn(bucket),))
    request.getfixturevalue("iam_enforced")  # now a wrong secret is a signature mismatch
    for key_id in (access, "AKIAUNKNOWN"):
        wrong = s3_server.store(bucket, access_key=key_id, secret_key=secret)
        with pytest.raises(AdapterError, match="rejected the credentials") as info:
            wrong.read("k")
        failures.append(info.value)

    for error in failures:
        chain: list[BaseException] = []
        current: BaseException | None = error
        while current is not None:
            chain.append(current)
            current = current.__cause__ or current.__context__
        for item in chain:
            assert secret not in str(item) and secret not in repr(item)


# --- TLS ---------------------------------------------------------------------------------------

def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drbot test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


@pytest.fixture
def tls_endpoint(s3_server: S3Server, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The same moto backends served over HTTPS with a private CA: (endpoint, CA file)."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    ca_file, cert_file, key_file = _tls_files(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app),
                         threaded=True, request_handler=MotoRequestHandler,
                         ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca_file
    finally:
        server.shutdown()
        thread.join(10)


def test_tls_is_verified_with_the_configured_ca(s3_server: S3Server,
                                                tls_endpoint: tuple[str, Path]) -> None:
    endpoint, ca_file = tls_endpoint
    bucket = s3_server.new_bucket()
    s3_server.store(bucket).upload("over-tls", b"ok")
    common: dict[str, Any] = {"endpoint_url": endpoint, "access_key": "a-key-id",
                              "secret_key": "a-secret-key",
                              "max_attempts": 1}

    with_ca = ObjectStore(StoreConfig(f"s3://{bucket}", ca_file=str(ca_file), **common))
    assert with_ca.read("over-tls") == b"ok"

    without_ca = ObjectStore(StoreConfig(f"s3://{bucket}", **common))
    with pytest.raises(Unreachable, match="TLS verification failed.*ca_file"):
        without_ca.read("over-tls")


# --- a mounted path -----------------------------------------------------------------------------

def test_unmounted_path_is_not_found(tmp_path: Path) -> None:
    store = ObjectStore(StoreConfig(f"nfs://{tmp_path}/not-mounted"))
    for call in (lambda: list(store.list("")), lambda: store.read("k"),
                 lambda: store.upload("k", b"1"), lambda: store.exists("k")):
        with pytest.raises(NotFound, match="not-mounted does not exist.*mount the NFS export"):
            call()


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs", "a//b", "a/./b", ""])
def test_keys_cannot_leave_the_mount(tmp_path: Path, key: str) -> None:
    store = ObjectStore(StoreConfig(f"file://{tmp_path}/base"))
    (tmp_path / "base").mkdir()
    with pytest.raises(AdapterError, match="invalid object key"):
        store.upload(key, b"1")
    assert list((tmp_path).rglob("escape")) == []


def test_half_written_files_are_not_listed(tmp_path: Path) -> None:
    store = ObjectStore(StoreConfig(f"nfs://{tmp_path}"))
    store.upload("dir/done", b"1")
    (tmp_path / "dir" / ".drbot-upload-abc").write_bytes(b"partial")
    assert [o.key for o in store.list("dir/")] == ["dir/done"]

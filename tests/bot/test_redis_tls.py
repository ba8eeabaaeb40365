"""`rediss://` with a CA file, against a real redis-server speaking TLS (Debian's is built with
TLS; `--tls-port`). The certificates are made here; verification is never switched off."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.config.settings import Settings
from bot.records.jobs import Job, JobStore, new_id
from bot.records.signing import Signer
from bot.runtime import connect
from lab.fakes.redis import RedisServer
from lab.servers import free_port


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    """A TLS-only redis-server; yields its port, the CA that signed it and another CA."""
    ca_key, other_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    _write(tmp_path / "ca", _cert("drbot test CA", ca_key, "drbot test CA", ca_key, True), None)
    _write(tmp_path / "other", _cert("other CA", other_key, "other CA", other_key, True), None)
    _write(tmp_path / "server", _cert("127.0.0.1", key, "drbot test CA", ca_key, False), key)
    port = free_port()
    server = RedisServer(port, tmp_path, args=[
        "--port", "0", "--tls-port", str(port), "--appendonly", "no",
        "--tls-cert-file", str(tmp_path / "server.crt"),
        "--tls-key-file", str(tmp_path / "server.key"),
        "--tls-ca-cert-file", str(tmp_path / "ca.crt"), "--tls-auth-clients", "no"],
        probe={"ssl": True, "ssl_ca_certs": str(tmp_path / "ca.crt")})
    server.start()
    try:
        yield port, tmp_path / "ca.crt", tmp_path / "other.crt"
    finally:
        server.stop()


def test_rediss_with_a_ca_file_carries_drbot_and_a_wrong_ca_is_refused(
        tls_redis: tuple[int, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    port, ca, other = tls_redis
    monkeypatch.setenv("DRBOT_SIGNING_KEY", "k" * 64)
    monkeypatch.setenv("REDIS_URL", f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    store = JobStore(connect(Settings(), patient=False), Signer(b"k" * 64))
    job, created = store.create(Job(new_id(), "exercise", {"name": "tls"}, "alice", "console:alice",
                                    "console", "tls-1"))
    assert created and store.get(job.id).args == {"name": "tls"}
    monkeypatch.setenv("REDIS_URL", f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={other}")
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        connect(Settings(), patient=False).ping()

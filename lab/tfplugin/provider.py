"""A schema-only bpg/proxmox provider plugin, so the real `terraform` can read the lab's state.

Terraform needs a provider's schema to decode the resources of a state (`terraform show -json`),
and the real bpg/proxmox provider cannot be downloaded here. This program is a Terraform plugin
that knows only that schema: it answers GetProviderSchema with the attributes of
`proxmox_virtual_environment_vm` that the lab's Terraform stub writes (lab/terraform_stub/state.py),
typed as bpg/proxmox declares them (docs/resources/virtual_environment_vm.md: `vm_id` number,
`node_name` string, `tags` list of strings, `memory`/`cpu`/`smbios` blocks of at most one).
It serves nothing that plans or applies: those calls are UNIMPLEMENTED. Test-only.

The launch follows hashicorp/go-plugin (server.go, mtls.go), which Terraform uses to start a
provider: the magic cookie must be in TF_PLUGIN_MAGIC_COOKIE; the plugin picks a protocol version
from PLUGIN_PROTOCOL_VERSIONS; when PLUGIN_CLIENT_CERT holds Terraform's certificate (AutoMTLS)
the plugin serves TLS that requires that client certificate, with a fresh self-signed one of its
own; then it prints one handshake line on stdout,
`CORE-PROTOCOL|APP-PROTOCOL|NETWORK|ADDRESS|grpc|BASE64-DER-CERT` (unpadded standard base64).
Besides the provider service, go-plugin's client speaks to `plugin.GRPCController` (Shutdown),
`plugin.GRPCBroker` (StartStream) and `plugin.GRPCStdio` (StreamStdio), and checks health with
`grpc.health.v1.Health/Check` for the service "plugin"; their messages here are empty or
hand-encoded, so no proto of go-plugin is needed.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

# hashicorp/terraform internal/plugin6/serve.go (Handshake): the cookie every provider checks.
MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
CORE_PROTOCOL = 1
APP_PROTOCOL = 6
HEALTH_SERVING = b"\x08\x01"  # grpc.health.v1.HealthCheckResponse{status: SERVING}

STRING, NUMBER, BOOL = b'"string"', b'"number"', b'"bool"'
LIST_OF_STRINGS = b'["list","string"]'


def _protos() -> tuple[Any, Any]:
    here = str(Path(__file__).parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return grpc.protos_and_services("tfplugin6_schema.proto")  # type: ignore[attr-defined]


pb, services = _protos()


def _attr(name: str, type_: bytes, *, required: bool = False, computed: bool = False) -> Any:
    return pb.Schema.Attribute(name=name, type=type_, required=required,
                               optional=not required, computed=computed)


def _one_block(name: str, *attrs: Any) -> Any:
    return pb.Schema.NestedBlock(type_name=name, block=pb.Schema.Block(attributes=list(attrs)),
                                 nesting=pb.Schema.NestedBlock.LIST, max_items=1)


def vm_schema() -> Any:
    """proxmox_virtual_environment_vm, as far as the lab's state holds it."""
    return pb.Schema(version=0, block=pb.Schema.Block(
        attributes=[
            _attr("id", STRING, computed=True),
            _attr("vm_id", NUMBER, computed=True),
            _attr("name", STRING),
            _attr("node_name", STRING, required=True),
            _attr("started", BOOL),
            _attr("tags", LIST_OF_STRINGS),
        ],
        block_types=[
            _one_block("memory", _attr("dedicated", NUMBER)),
            _one_block("cpu", _attr("cores", NUMBER)),
            _one_block("smbios", _attr("uuid", STRING, computed=True)),
        ]))


def provider_schema() -> Any:
    return pb.Schema(version=0, block=pb.Schema.Block(attributes=[
        _attr("endpoint", STRING), _attr("api_token", STRING), _attr("insecure", BOOL)]))


class Provider(services.ProviderServicer):  # type: ignore[misc]
    """Schema and state upgrade only: every RPC not defined here answers UNIMPLEMENTED."""

    def GetProviderSchema(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
        return pb.GetProviderSchema.Response(
            provider=provider_schema(),
            resource_schemas={"proxmox_virtual_environment_vm": vm_schema()})

    def UpgradeResourceState(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Schema version 0 is the only one: the stored JSON is already current."""
        if request.version != 0 or not request.raw_state.json:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "only schema version 0 JSON state")
        return pb.UpgradeResourceState.Response(
            upgraded_state=pb.DynamicValue(json=request.raw_state.json))

    def StopProvider(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.StopProvider.Response()


def _plumbing(stop: threading.Event) -> grpc.GenericRpcHandler:
    """go-plugin's own services, with raw bytes (empty messages, or one varint field)."""

    def shutdown(_request: bytes, _context: Any) -> bytes:
        stop.set()
        return b""

    def idle_stream(_request: Any, context: Any) -> Iterator[bytes]:
        """Open until the client goes or the plugin stops: nothing is brokered or forwarded."""
        gone = threading.Event()
        context.add_callback(gone.set)
        while not (gone.wait(1) or stop.is_set()):
            pass
        yield from ()

    def health(_request: bytes, _context: Any) -> bytes:
        return HEALTH_SERVING

    handlers = {
        "plugin.GRPCController": {"Shutdown": _raw_unary(shutdown)},
        "plugin.GRPCBroker": {"StartStream": grpc.stream_stream_rpc_method_handler(
            idle_stream, request_deserializer=None, response_serializer=None)},
        "plugin.GRPCStdio": {"StreamStdio": grpc.unary_stream_rpc_method_handler(
            idle_stream, request_deserializer=None, response_serializer=None)},
        "grpc.health.v1.Health": {"Check": _raw_unary(health)},
    }
    return _Generic(handlers)


def _raw_unary(fn: Any) -> Any:
    return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=None,
                                               response_serializer=None)


class _Generic(grpc.GenericRpcHandler):
    def __init__(self, services_: dict[str, dict[str, Any]]) -> None:
        self.methods = {f"/{svc}/{name}": h for svc, methods in services_.items()
                        for name, h in methods.items()}

    def service(self, handler_call_details: Any) -> Any:
        return self.methods.get(handler_call_details.method)


def _server_cert() -> tuple[bytes, bytes, bytes]:
    """A fresh self-signed certificate for localhost, as go-plugin's generateCert makes one."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(seconds=30))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                         key_agreement=True, key_cert_sign=True,
                                         content_commitment=False, data_encipherment=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                  ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return (key_pem, cert.public_bytes(serialization.Encoding.PEM),
            cert.public_bytes(serialization.Encoding.DER))


def _tls_context(key_pem: bytes, cert_pem: bytes, client_cert: str, private: str
                 ) -> ssl.SSLContext:
    """TLS 1.2+ that requires Terraform's own client certificate, offering HTTP/2 (gRPC)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    key_file, cert_file = Path(private, "server.key"), Path(private, "server.crt")
    key_file.write_bytes(key_pem)
    cert_file.write_bytes(cert_pem)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=client_cert)
    ctx.set_alpn_protocols(["h2"])
    return ctx


class TlsFront:
    """The TLS end of the plugin's connection, in front of the gRPC server's private socket.

    gRPC's own TLS (BoringSSL) cannot take Terraform's client certificate: go-plugin makes it
    on ECDSA P-521 (mtls.go), whose signatures BoringSSL does not offer, so Go's TLS client finds
    no acceptable certificate and sends none. Python's ssl (OpenSSL) verifies it; the bytes
    inside are relayed unchanged to the gRPC server on a socket only this user can open."""

    def __init__(self, inner: str, ctx: ssl.SSLContext) -> None:
        self.inner, self.ctx = inner, ctx
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            outer = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            print(f"TLS handshake refused: {exc}", file=sys.stderr, flush=True)
            conn.close()
            return
        inner = socket.socket(socket.AF_UNIX)
        inner.connect(self.inner)
        threading.Thread(target=_pump, args=(inner, outer), daemon=True).start()
        _pump(outer, inner)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _orphan_watch(stop: threading.Event) -> None:
    """Stop when Terraform is gone without a Shutdown (killed): never outlive a test run."""
    parent = os.getppid()
    while not stop.wait(1):
        if os.getppid() != parent:
            stop.set()


def main() -> int:
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        print("This binary is a plugin. These are not meant to be executed directly.\n"
              "Please execute the program that consumes these plugins, which will\n"
              "load any plugins automatically", file=sys.stderr)
        return 1
    offered = {v.strip() for v in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(",")}
    if str(APP_PROTOCOL) not in offered:
        print(f"this provider speaks plugin protocol {APP_PROTOCOL} only; offered: "
              f"{sorted(offered)}", file=sys.stderr)
        return 1
    stop = threading.Event()
    threading.Thread(target=_orphan_watch, args=(stop,), daemon=True).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    services.add_ProviderServicer_to_server(Provider(), server)
    server.add_generic_rpc_handlers((_plumbing(stop),))
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
    with tempfile.TemporaryDirectory(prefix="tfplugin-") as private:
        inner = os.path.join(private, "grpc.sock")  # a 0700 directory: only this user
        server.add_insecure_port(f"unix:{inner}")
        server.start()
        if client_cert:
            key_pem, cert_pem, cert_der = _server_cert()
            front = TlsFront(inner, _tls_context(key_pem, cert_pem, client_cert, private))
            cert_field = base64.b64encode(cert_der).decode().rstrip("=")
            print(f"{CORE_PROTOCOL}|{APP_PROTOCOL}|tcp|{front.address}|grpc|{cert_field}",
                  flush=True)
        else:  # TF_DISABLE_PLUGIN_TLS: go-plugin dials the socket itself
            print(f"{CORE_PROTOCOL}|{APP_PROTOCOL}|unix|{inner}|grpc|", flush=True)
        stop.wait()
        server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

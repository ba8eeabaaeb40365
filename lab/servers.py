"""The lab's servers, all on 127.0.0.1 with ports the system picks.

kmock and fakepve are asyncio servers: both run on one event loop in one thread (the lab loop),
together with the lab's controllers, so the controllers read their state without locks. moto runs
in its own thread (werkzeug); each VM's SSH endpoint is a real `/usr/sbin/sshd` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import os
import random
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from lab.holds import Holds

T = TypeVar("T")
HOST = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"


def free_port() -> int:
    """A port nobody holds right now, outside the range the system hands out (``hold_port``)."""
    with hold_port() as sock:
        return int(sock.getsockname()[1])


def hold_port(port: int = 0) -> socket.socket:
    """A socket bound to the port and not listening: a connection there is refused, and nobody
    else can take the port while it is held (a port picked free and let go can be).

    Without a port, one below the kernel's ephemeral range (``ip_local_port_range``), which it
    never hands out on its own: let go just before a server binds it, it cannot meanwhile become
    an outgoing connection's source port or another bind to port 0's pick, as one in that range
    did on a loaded machine (the lab's sshd then exited 255, "Address already in use")."""
    if port:
        return _bind(port)
    ports = _unassigned_ports()
    for candidate in random.sample(ports, min(len(ports), 64)):
        with contextlib.suppress(OSError):
            return _bind(candidate)
    return _bind(0)


def _bind(port: int) -> socket.socket:
    sock = socket.socket()
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


@functools.cache
def _unassigned_ports() -> range:
    """10000 up to the ephemeral range's start; empty where that range starts too low (read
    once: the range is the machine's, and a lab picks ports many times)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return range(0)
    return range(10000, low)


_DEAD: list[socket.socket] = []


def dead_port() -> int:
    """A port where connections are refused for the rest of this process."""
    sock = hold_port()
    _DEAD.append(sock)
    return int(sock.getsockname()[1])


class WaitTimeout(TimeoutError):
    """A wait_until that ran out (told apart from a TimeoutError the check itself raised)."""


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.02,
               longest: float = 0.25) -> Any:
    """Poll `check()` until it returns something truthy; TimeoutError naming `what` otherwise.

    The pause grows with the time already waited (a twentieth of it, from ``interval`` up to
    ``longest``): a condition that holds is seen within 5 % of the wait, and a test waiting a
    minute for a job reads the world a few times a second, not fifty, which on a loaded machine
    is CPU the job under test needs."""
    started = time.monotonic()
    while True:
        result = check()
        if result:
            return result
        waited = time.monotonic() - started
        if waited > timeout:
            raise WaitTimeout(f"lab: {what} did not happen within {timeout:.1f}s")
        time.sleep(min(max(interval, waited / 20), max(longest, interval), timeout - waited + 0.001))


class LabLoop:
    """An asyncio event loop in a daemon thread; `call()` runs a coroutine on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="drbot-lab-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_running():
            with contextlib.suppress(Exception):
                self.call(_cancel_all(), timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


def quiet_test_server() -> type:
    """kmock's aiohttp test server without aiohttp's access log. The log line was written from
    the lab's loop thread, and in tests often after pytest had closed the stream it captured,
    which printed "--- Logging error --- I/O operation on closed file" into the run's output."""
    from aiohttp.test_utils import RawTestServer

    class QuietTestServer(RawTestServer):
        async def _make_runner(self, debug: bool = True, **kwargs: Any) -> Any:
            return await super()._make_runner(debug=debug, access_log=None, **kwargs)
    return QuietTestServer


class KubeServer:
    """A kmock emulator served over HTTP on the lab loop."""

    def __init__(self, loop: LabLoop, emulator: Any) -> None:
        self.loop = loop
        self.emulator = emulator
        self.server: Any = None

    async def _start(self) -> str:
        import kmock

        await self.emulator.__aenter__()
        self.server = kmock.Server(self.emulator, host=HOST, port=None,
                                   server_cls=quiet_test_server())
        await self.server.__aenter__()
        return str(self.server.url).rstrip("/")

    async def _stop(self) -> None:
        if self.server is not None:
            await self.server.__aexit__(None, None, None)
            self.server = None
            await self.emulator.__aexit__(None, None, None)

    def start(self) -> str:
        return self.loop.call(self._start())

    def stop(self) -> None:
        self.loop.call(self._stop())


class PveServer:
    """A fakepve cluster over HTTPS on the lab loop, its certificate doubling as the CA file."""

    def __init__(self, loop: LabLoop, pve: Any, pki_dir: Path) -> None:
        self.loop = loop
        self.pve = pve
        self.pki_dir = pki_dir
        self.ca_file = ""

    def start(self) -> str:
        from fakepve.certs import make_cert

        self.pki_dir.mkdir(parents=True, exist_ok=True)
        certfile, keyfile, _ = make_cert(str(self.pki_dir), name="pve", hosts=(HOST,))
        self.ca_file = certfile
        self.loop.call(self.pve.start(certfile, keyfile))
        # The key is loaded; nothing else needs it.
        Path(keyfile).unlink()
        return str(self.pve.url)

    def stop(self) -> None:
        from fakepve import settle

        async def _stop() -> None:
            await settle()
            await self.pve.stop()

        self.loop.call(_stop())


class S3Server:
    """moto's S3 in a werkzeug thread, as moto's ThreadedMotoServer runs it
    (getmoto/moto: moto/moto_server/threaded_moto_server.py), with one WSGI layer outermost that
    can hold a request before or after moto applied it (``holds``, see lab.holds)."""

    def __init__(self) -> None:
        self.holds = Holds()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def _app(self) -> Any:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        moto = DomainDispatcherApplication(create_backend_app)
        holds = self.holds

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
            holds.block(method, path, after=False)
            body = list(moto(environ, start_response))  # moto applies the request here
            holds.block(method, path, after=True)
            return body
        return app

    def start(self) -> str:
        import logging

        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        # werkzeug logs every request at INFO; the lab's output is for its own messages
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server(HOST, 0, self._app(), threaded=True,
                                   request_handler=MotoRequestHandler)
        # A stop waits for the serving loop's next poll (half a second by default).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.holds.release_all()
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join()


def sshd_config(port: int, host_key: Path, pid_file: Path, authorized_keys: Path) -> str:
    """A VM's SSH endpoint: answers the handshake with its host key and lets one account in,
    the lab's own user with the lab's key, to run `true` and nothing else (ForceCommand, and the
    key's `restrict,command=` options, which root's login also needs: PermitRootLogin
    forced-commands-only). That is what `drbot doctor` checks: the key and the host key."""
    user = getpass.getuser()
    return "\n".join(
        [
            f"Port {port}",
            f"ListenAddress {HOST}",
            f"HostKey {host_key}",
            f"PidFile {pid_file}",
            f"AllowUsers {user}",
            "AuthenticationMethods publickey",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin forced-commands-only",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "PermitTTY no",
            f"AuthorizedKeysFile {authorized_keys}",
            "StrictModes no",  # the lab's files live under a temporary directory
            "ForceCommand /bin/true",
            "LogLevel ERROR",
            "",
        ]
    )


def new_login_key(path: Path) -> Path:
    """The key the lab's nodes accept (`iac.ssh_key_file`), and their authorized_keys file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        subprocess.run(
            [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "drbot-lab", "-f", str(path)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    public = path.with_name(path.name + ".pub").read_text().strip()
    authorized = path.with_name("authorized_keys")
    authorized.write_text(f'restrict,command="/bin/true" {public}\n')
    return authorized


def new_host_key(path: Path) -> None:
    """Write a fresh ed25519 host key (a re-created VM gets a new one).

    Generated beside the old one and renamed over it, so the key never goes missing and two
    writers at once (the Terraform stub re-creating a VM, a controller starting its sshd) cannot
    trip over each other: the last rename wins, each pair stays whole.
    """
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "lab-vm", "-f", str(scratch)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.replace(scratch.with_name(scratch.name + ".pub"), path.with_suffix(".pub"))
    os.replace(scratch, path)


def ssh_banner(port: int, timeout: float = 0.5) -> bytes:
    """The SSH identification line of the endpoint, b'' if nothing answers."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            return sock.recv(64)
    except OSError:
        return b""


class Sshd:
    """One VM's SSH endpoint: a real sshd on its own port with the VM's host key."""

    def __init__(self, node: str, directory: Path, authorized_keys: Path) -> None:
        self.node = node
        self.dir = directory
        self.authorized_keys = authorized_keys
        # Held while sshd is down (first start, VM re-created), so that no other process takes
        # the port and answers in its place; let go just before sshd binds it.
        self._held: socket.socket | None = hold_port()
        self.port = int(self._held.getsockname()[1])
        self.host_key = directory / "ssh_host_ed25519_key"
        self.pid_file = directory / "sshd.pid"
        self.config = directory / "sshd_config"
        self.log = directory / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.loaded_key = 0

    def start(self) -> None:
        """Start sshd with the host key on disk (a first start makes one)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # sshd's privilege separation directory; Debian's service unit creates it at boot.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        if not self.host_key.exists():
            new_host_key(self.host_key)
        self.config.write_text(
            sshd_config(self.port, self.host_key, self.pid_file, self.authorized_keys)
        )
        self.loaded_key = self.key_stamp()
        self.release_port()
        with self.log.open("ab") as log:  # -e: sshd's own messages, for when it will not start
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def key_stamp(self) -> int:
        try:
            return self.host_key.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def key_changed(self) -> bool:
        return self.key_stamp() != self.loaded_key

    def ready(self) -> bool:
        return ssh_banner(self.port).startswith(b"SSH-2.0-")

    def wait_ready(self, timeout: float = 10.0) -> None:
        def check() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                said = self.log.read_text(errors="replace").strip().splitlines()
                raise RuntimeError(
                    f"lab: sshd for {self.node} on port {self.port} exited with "
                    f"{self.proc.returncode} ({said[-1] if said else 'it said nothing'}); "
                    f"check {self.config}"
                )
            return self.ready()

        wait_until(check, timeout, f"sshd for {self.node} on port {self.port}")

    def public_key(self) -> str:
        return self.host_key.with_suffix(".pub").read_text().split()[1]

    def known_hosts_line(self) -> str:
        """The line `ssh-keyscan -p PORT 127.0.0.1` gives for this endpoint."""
        kind, key = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[{HOST}]:{self.port} {kind} {key}"

    def reload(self) -> None:
        """SIGHUP: sshd re-executes itself and loads the host key on disk (same pid)."""
        self.loaded_key = self.key_stamp()
        if self.alive() and self.proc is not None:
            os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._held is None:
            try:
                self._held = hold_port(self.port)
            except OSError:  # taken in the moment it was free; start() then fails loudly
                self._held = None

    def release_port(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

"""A real OpenSSH server on 127.0.0.1 for the tests of SSH host keys (the Ansible adapter's
known_hosts reset, the runbooks' SSH helpers in handlers/iac.py)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from adapters import subprocesses
from lab.servers import free_port
from tests.support import wait_until

SSHD = "/usr/sbin/sshd"


class Sshd:
    """An OpenSSH server on 127.0.0.1 with its own host key, config and authorized_keys."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.host_key = root / "host_ed25519"
        self.client_key = root / "client_ed25519"
        self.proc: subprocess.Popen[bytes] | None = None
        keygen(self.client_key)
        (root / "authorized_keys").write_text((root / "client_ed25519.pub").read_text())
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
            "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
        )
        self.new_host_key()

    def new_host_key(self) -> str:
        for path in (self.host_key, self.host_key.with_suffix(".pub")):
            path.unlink(missing_ok=True)
        keygen(self.host_key)
        return self.public_blob()

    def public_blob(self) -> str:
        return self.host_key.with_suffix(".pub").read_text().split()[1]

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        log = open(self.root / "sshd.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                     stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_until(self._banner, what="sshd to answer")

    def _banner(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError((self.root / "sshd.log").read_text())
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(64).startswith(b"SSH-2.0")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocesses.kill_tree(self.proc.pid, grace=5)
            self.proc.wait()


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)],
                   check=True, capture_output=True)

"""SSH: every node accepts a login with the configured key, and serves the host key recorded in
the configured known_hosts file. `ssh` runs in batch mode with strict host key checking and
every way of writing switched off (no known_hosts updates, no control master), and the remote
command is `true`: a login, nothing else. The nodes are tried at once, so a homelab with a node
down waits one connect timeout, not one per node."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from bot.doctor.result import Line, System, fail, ok, skip

if TYPE_CHECKING:
    from bot.config.inventory import Iac, Inventory, Node

SSH = System.SSH
TIMEOUT = 30
CONNECT_TIMEOUT = 10
MAX_LOGINS = 8  # ssh clients at once


def known_name(address: str, port: int) -> str:
    """How ssh files this endpoint in known_hosts."""
    return address if port == 22 else f"[{address}]:{port}"


def argv(iac: Iac, address: str, port: int) -> list[str]:
    assert iac.ssh_key_file and iac.known_hosts_file
    options = {"BatchMode": "yes", "IdentitiesOnly": "yes", "IdentityFile": iac.ssh_key_file,
               "UserKnownHostsFile": iac.known_hosts_file, "GlobalKnownHostsFile": "/dev/null",
               "StrictHostKeyChecking": "yes", "UpdateHostKeys": "no", "HashKnownHosts": "no",
               "ControlMaster": "no", "ControlPath": "none", "ConnectTimeout": str(CONNECT_TIMEOUT),
               "PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no",
               "LogLevel": "ERROR", "RequestTTY": "no"}
    out = ["ssh", "-F", "/dev/null", "-p", str(port)]
    for key, value in options.items():
        out += ["-o", f"{key}={value}"]
    return [*out, "-l", iac.ssh_user, "--", address, "true"]


def diagnose(stderr: str, iac: Iac, name: str, address: str, port: int) -> tuple[str, str]:
    """(what went wrong, the fix) from ssh's own words."""
    known = known_name(address, port)
    scan = (f"`ssh-keyscan -p {port} {address}`, compare the fingerprint with the VM's console "
            f"(`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then add it to "
            f"{iac.known_hosts_file}")
    if "HOST IDENTIFICATION HAS CHANGED" in stderr or ("Host key for" in stderr and
                                                      "has changed" in stderr):
        return ("serves a different host key than the one recorded in "
                f"{iac.known_hosts_file}",
                f"if {name} was rebuilt, `ssh-keygen -R '{known}' -f {iac.known_hosts_file}` and "
                f"record the new key: {scan}; if not, someone may be in the middle: investigate")
    if ("No " in stderr and "host key is known" in stderr) or \
            "Host key verification failed" in stderr:
        return (f"its host key is not in {iac.known_hosts_file}", f"record it: {scan}")
    if "Permission denied" in stderr:
        return (f"refuses the key {iac.ssh_key_file} for user {iac.ssh_user}",
                f"add the public key (`ssh-keygen -y -f {iac.ssh_key_file}`) to "
                f"~{iac.ssh_user}/.ssh/authorized_keys on {name} (your Ansible user setup), "
                "or fix iac.ssh_key_file / iac.ssh_user")
    if "UNPROTECTED PRIVATE KEY" in stderr or "bad permissions" in stderr:
        return (f"ssh refuses to use {iac.ssh_key_file}: others can read it",
                f"`chmod 600 {iac.ssh_key_file}`")
    if "Connection refused" in stderr or "timed out" in stderr or "No route" in stderr \
            or "Could not resolve" in stderr:
        return (f"cannot be reached at {address}:{port} ({' '.join(stderr.split())[:120]})",
                f"start {name} (and its sshd), or fix nodes.{name}.ssh_address/ssh_port")
    return (f"ssh failed: {' '.join(stderr.split())[:200]}",
            f"try the same login by hand: ssh -i {iac.ssh_key_file} -p {port} "
            f"{iac.ssh_user}@{address}")


def check_node(iac: Iac, name: str, node: Node) -> Line:
    address = node.ssh_address or node.ansible_host
    try:
        proc = subprocess.run(argv(iac, address, node.ssh_port), capture_output=True,  # noqa: S603
                              text=True, timeout=TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return fail(SSH, name, "the ssh client is not installed", "install openssh-client")
    except subprocess.TimeoutExpired:
        return fail(SSH, name, f"no answer within {TIMEOUT}s at {address}:{node.ssh_port}",
                    f"start {name} or fix nodes.{name}.ssh_address/ssh_port")
    if proc.returncode == 0:
        return ok(SSH, name, f"{iac.ssh_user}@{address}:{node.ssh_port} logs in with the key, "
                             "host key as recorded")
    detail, fix = diagnose(proc.stderr, iac, name, address, node.ssh_port)
    return fail(SSH, name, detail, fix)


def check(inventory: Inventory) -> list[Line]:
    iac = inventory.iac
    if iac is None or not inventory.nodes:
        return [skip(SSH, "nodes", "no `iac` section or no nodes in the inventory")]
    if not iac.ssh_key_file or not iac.known_hosts_file:
        missing = [k for k in ("ssh_key_file", "known_hosts_file") if not getattr(iac, k)]
        return [fail(SSH, "nodes", f"iac.{' and iac.'.join(missing)} not set: logins to the "
                     "nodes cannot be checked", "set iac.ssh_key_file (the key Ansible uses) "
                     "and iac.known_hosts_file (the nodes' host keys, as `ssh-keyscan` gives "
                     "them after you checked their fingerprints)")]
    nodes = sorted(inventory.nodes.items())
    with ThreadPoolExecutor(max_workers=min(len(nodes), MAX_LOGINS)) as pool:
        return list(pool.map(lambda item: check_node(iac, *item), nodes))

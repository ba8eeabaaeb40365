"""The simulated homelab drbot's demo, end-to-end tests and `python -m lab` run against.

    with Lab(Path("/tmp/lab"), time_scale=0.1) as lab:
        subprocess.run(["drbot", "worker"], env={**os.environ, **lab.env})

It starts, on 127.0.0.1 only, a Kubernetes API (kmock), a Proxmox VE cluster (fakepve), S3
(moto), one real sshd per VM, a Terraform stub, a Flux bootstrap program and an Ansible project
acting on them, seeds the homelab of `lab.world`, and runs controllers that make the world
react (see `lab.controllers`). It needs the `lab` extra and is imported only by `python -m lab`,
the demo and the tests.
"""

from __future__ import annotations

import configparser
import contextlib
import copy
import functools
import os
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TypeVar

from lab import files, world
from lab.controllers import Controllers
from lab.controllers.base import Timings
from lab.holds import Hold
from lab.seed import seed_objects
from lab.servers import (
    KubeServer,
    LabLoop,
    PveServer,
    S3Server,
    Sshd,
    new_login_key,
    ssh_banner,
    wait_until,
)

T = TypeVar("T")
# A person's screen: warnings only, as plain text, and the status card edited twice a second.
QUIET = {"DRBOT_LOG_LEVEL": "WARNING", "DRBOT_LOG_JSON": "false", "DRBOT_THROTTLE_SECONDS": "0.5"}
__all__ = ["QUIET", "KubeRequest", "Lab", "LabWorld", "Timings", "VmState", "main"]


@dataclass(frozen=True)
class VmState:
    """A VM as fakepve has it; exists=False once destroyed."""

    node: str
    vmid: int
    host: str
    exists: bool
    status: str
    smbios_uuid: str


@dataclass(frozen=True)
class KubeRequest:
    """One request a client (not the lab's controllers) made to the Kubernetes API."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    user_agent: str = ""


class LabWorld:
    """Read and poke the lab's state from tests (thread-safe: reads go through the lab loop)."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    @property
    def state(self) -> world.WorldState:
        return self._lab._state

    def etcd_members(self) -> list[world.EtcdMember]:
        """The etcd member list (`etcdctl member list`), healthy = its VM runs."""
        return self.state.members()

    def events(self) -> list[str]:
        """What the lab's controllers did, oldest first."""
        with self.state.lock:
            return list(self.state.events)

    def vm(self, node: str) -> VmState:
        spec = world.node_spec(node)

        async def read() -> VmState:
            vm = self._lab._pve.vm(spec.vmid)
            if vm is None:
                return VmState(node, spec.vmid, spec.host, False, "", "")
            smbios = str(vm.config.get("smbios1", ""))
            return VmState(
                node,
                spec.vmid,
                vm.node,
                True,
                vm.status,
                smbios.partition("uuid=")[2].split(",")[0],
            )

        return self._lab._loop.call(read())

    def vms(self) -> dict[str, VmState]:
        return {spec.name: self.vm(spec.name) for spec in world.NODES}

    def crash_vm(self, node: str) -> None:
        """The VM stops without warning (power loss, kernel panic)."""
        spec = world.node_spec(node)

        async def crash() -> None:
            vm = self._lab._pve.vm(spec.vmid)
            if vm is not None:
                vm.status = vm.qmpstatus = "stopped"
                vm.started_at = None

        self._lab._loop.call(crash())
        self.state.record(f"vm {node} crashed")

    def fail_host(self, host: str) -> None:
        """A Proxmox host dies: it goes offline and every VM on it stops."""

        async def fail() -> None:
            for vm in self._lab._pve.vms:
                if vm.node == host:
                    vm.status = vm.qmpstatus = "stopped"
            self._lab._pve.set_node_offline(host)

        self._lab._loop.call(fail())
        self.state.record(f"proxmox host {host} failed")

    def replace_host(self, host: str) -> None:
        """The failed host's hardware was replaced and Proxmox reinstalled: online, no VMs."""

        async def replace() -> None:
            pve = self._lab._pve
            pve.vms[:] = [vm for vm in pve.vms if vm.node != host]
            pve.set_node_offline(host, offline=False)

        self._lab._loop.call(replace())
        self.state.record(f"proxmox host {host} replaced and reinstalled (no VMs)")

    def kube_object(
        self, api_version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """An object as the Kubernetes API holds it now, or None."""
        import kmock

        group, _, version = api_version.rpartition("/")
        res = kmock.resource(group, version, plural)

        async def read() -> dict[str, Any] | None:
            return self._lab._kube.current(res, namespace, name)

        return self._lab._loop.call(read())

    def kube_objects(self, api_version: str, plural: str) -> list[dict[str, Any]]:
        """Every object of a resource as the Kubernetes API holds it now."""
        import kmock

        group, _, version = api_version.rpartition("/")
        res = kmock.resource(group, version, plural)

        async def read() -> list[dict[str, Any]]:
            return self._lab._kube.live(res)

        return self._lab._loop.call(read())

    def put(self, objects: list[dict[str, Any]]) -> None:
        """Create or replace objects straight in the API's store: a test's or a bench's setup,
        which stays out of `kube_requests` (what drbot asked of the API)."""

        async def put() -> None:
            seed_kube(self._lab._kube, copy.deepcopy(objects))

        self._lab._loop.call(put())

    def kube_requests(self) -> list[KubeRequest]:
        """Requests clients made to the Kubernetes API (the controllers' own are left out)."""

        async def read() -> list[KubeRequest]:
            return [
                KubeRequest(
                    str(r.method.value if hasattr(r.method, "value") else r.method),
                    r.url.path,
                    dict(r.params),
                    copy.deepcopy(r.data),
                    str(r.headers.get("User-Agent", "")),
                )
                for r in self._lab._kube.requests_made()
                if "watch" not in r.params
            ] + [KubeRequest(method, path, query, None, agent)  # pods/exec, served beside kmock
                 for method, path, query, agent in list(self._lab._kube.exec_requests)]

        return self._lab._loop.call(read())

    def hold_kube(self, method: str, path_pattern: str, *, after: bool = True,
                  nth: int = 1) -> Hold:
        """Hold the first client request to the Kubernetes API matching ``method`` and the
        ``path_pattern`` regex, right after it is applied (or before, ``after=False``), until
        ``release()``: where a test kills drbot's worker (see lab.holds). ``nth`` holds the nth
        matching request instead of the first."""
        return self._lab._kube.holds.arm(method, path_pattern, after=after, nth=nth)

    def hold_pve(self, method: str, path_pattern: str, *, after: bool = True,
                 nth: int = 1) -> Hold:
        """As hold_kube, for the Proxmox API (a task it started runs on while held)."""
        return self._lab._pve.holds.arm(method, path_pattern, after=after, nth=nth)

    def hold_s3(self, method: str, path_pattern: str, *, after: bool = True,
                nth: int = 1) -> Hold:
        """As hold_kube, for the S3 API (paths are path-style: /bucket/key)."""
        return self._lab._s3.holds.arm(method, path_pattern, after=after, nth=nth)

    def pve_requests(self) -> list[tuple[str, str, Any]]:
        """(method, path, body) of every request made to Proxmox (request bodies redacted)."""

        async def read() -> list[tuple[str, str, Any]]:
            return list(self._lab._pve.requests)

        return self._lab._loop.call(read())

    def ssh_port(self, node: str) -> int:
        return self._lab._sshds[node].port

    def ssh_host_key(self, node: str) -> str:
        """The host key the node's SSH endpoint has on disk (base64 part of the .pub line)."""
        return self._lab._sshds[node].public_key()

    def change_host_key(self, node: str) -> None:
        """The node's sshd gets a new host key (a reinstalled VM, or a machine in the middle)."""
        from lab.servers import new_host_key

        new_host_key(self._lab._sshds[node].host_key)
        self.reload_sshd(node)

    def run_longhorn(self, version: world.LonghornVersion | str) -> None:
        """Longhorn upgraded (or downgraded) in place: its webhook's rules become that version's."""
        with self.state.lock:
            self.state.longhorn = world.LonghornVersion(version)
        self.state.record(f"longhorn now runs as v{version}")

    def deny_kube(self, verb: str, group: str, resource: str) -> None:
        """Take one permission away from drbot's Kubernetes credentials."""

        async def deny() -> None:
            self._lab._kube.denied.add((verb, group, resource))

        self._lab._loop.call(deny())

    def reload_sshd(self, node: str) -> None:
        """The node's sshd loads the host key on disk again; returns once it serves it."""
        sshd = self._lab._sshds[node]
        sshd.reload()
        wanted = sshd.public_key()
        self.wait_for(lambda: wanted in self.served_host_key(node), 20,
                      f"{node}'s sshd serving its new host key")

    def served_host_key(self, node: str) -> str:
        """The host key the node's sshd serves now (`ssh-keyscan`), '' if it does not answer."""
        import subprocess

        found = subprocess.run(
            ["ssh-keyscan", "-T", "2", "-t", "ed25519", "-p", str(self.ssh_port(node)),
             "127.0.0.1"], capture_output=True, text=True, timeout=20, check=False,
        )
        return found.stdout

    def allow_kube_all(self) -> None:
        """Give drbot's Kubernetes credentials back every permission."""

        async def allow() -> None:
            self._lab._kube.denied.clear()

        self._lab._loop.call(allow())

    def reset_pve_grants(self) -> None:
        """Back to the lab's start: the token holds every privilege (no ACL yet)."""

        async def reset() -> None:
            self._lab._pve.acl = None

        self._lab._loop.call(reset())

    def grant_pve(self, path: str, *privileges: str, token: str = files.PVE_TOKEN_ID) -> None:
        """Give a Proxmox token (drbot's by default) privileges on a path; from the first grant
        on, every token holds only what it was granted (fakepve's ACL model)."""

        async def grant() -> None:
            self._lab._pve.grant(token, path, *privileges)

        self._lab._loop.call(grant())

    def ssh_up(self, node: str) -> bool:
        return ssh_banner(self.ssh_port(node)).startswith(b"SSH-2.0-")

    def wait_for(self, check: Callable[[], T], timeout: float, what: str) -> T:
        """Poll `check()` until truthy; TimeoutError naming `what` after `timeout` seconds."""
        return wait_until(check, timeout, what)


class Lab:
    """Start with `with Lab(workdir) as lab:` (or `start()`), stop with `stop()`; see module doc."""

    def __init__(
        self, workdir: Path, time_scale: float = 1.0, timings: Timings | None = None,
        longhorn: world.LonghornVersion | str = world.LonghornVersion.V1_10,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.time_scale = time_scale
        self.timings = (timings or Timings()).scaled(time_scale)
        self.world = LabWorld(self)
        self.env: dict[str, str] = {}
        self.kubeconfig = self.workdir / "kubeconfig"
        self.inventory_path = self.workdir / "inventory.yaml"
        self.policy_path = self.workdir / "policy.yaml"
        self.kube_url = self.pve_url = self.s3_url = self.pve_ca_file = ""
        self.paths: files.Paths | None = None
        self._state = world.WorldState(longhorn=world.LonghornVersion(longhorn))
        self._loop: Any = None
        self._kube: Any = None
        self._pve: Any = None
        self._terraform_token = ""
        self._s3: Any = None
        self._servers: list[Any] = []
        self._sshds: dict[str, Sshd] = {}
        self._controllers: Controllers | None = None
        self._started = False

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Lab:
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        self._loop = LabLoop()
        with self._state.lock:
            self._state.etcd_members = {
                s.name: world.etcd_member(s) for s in world.NODES if s.server
            }
        vm_uuids = {spec.name: world.vm_uuid(spec.name) for spec in world.NODES}
        git_key = secrets.token_hex(24)  # Flux's (fake) Git deploy key: in the seed and a file

        from lab.kube import LabKube

        self._kube = LabKube()
        seed_kube(
            self._kube,
            seed_objects(now, self._state.etcd_members, len(files.store.SNAPSHOT_BYTES), git_key,
                         self._state.longhorn),
        )
        kube_server = KubeServer(self._loop, self._kube)
        self._servers.append(kube_server)
        self.kube_url = kube_server.start()

        pve_token = secrets.token_hex(16)
        self._terraform_token = secrets.token_hex(16)
        self._pve = make_pve(vm_uuids, pve_token, self._terraform_token)
        pve_server = PveServer(self._loop, self._pve, self.workdir / "pki")
        self._servers.append(pve_server)
        self.pve_url = pve_server.start()
        self.pve_ca_file = pve_server.ca_file

        s3 = self._s3 = S3Server()
        self._servers.append(s3)
        self.s3_url = s3.start()
        s3_secret = secrets.token_hex(16)
        seed_s3(now)

        login_key = self.workdir / "secrets" / "ssh-key"
        authorized_keys = new_login_key(login_key)
        for spec in world.NODES:
            sshd = Sshd(spec.name, self.workdir / "vms" / spec.name / "ssh", authorized_keys)
            self._sshds[spec.name] = sshd
            sshd.start()
        known_hosts = self.workdir / "known_hosts"
        known_hosts.write_text("".join(s.known_hosts_line() + "\n" for s in self._sshds.values()))
        endpoints = files.Endpoints(
            kube_url=self.kube_url,
            pve_url=self.pve_url,
            pve_ca_file=self.pve_ca_file,
            pve_token=pve_token,
            s3_url=self.s3_url,
            s3_secret=s3_secret,
            ssh_ports={n: s.port for n, s in self._sshds.items()},
            ssh_host_keys={n: str(s.host_key) for n, s in self._sshds.items()},
            ssh_key_file=str(login_key),
            known_hosts_file=str(known_hosts),
        )
        self.paths = files.write_all(
            self.workdir,
            endpoints,
            vm_uuids,
            now,
            secrets.token_hex(16),
            secrets.token_hex(24),
            git_key,
        )
        self._write_aws_files(s3_secret)
        self.env = self._env()
        for sshd in self._sshds.values():
            sshd.wait_ready()

        self._controllers = Controllers(
            self._kube, self._pve, self._state, self.timings, self._sshds, self.workdir / "vms"
        )
        self._controllers.longhorn_store = functools.partial(lab_store, self.s3_url, s3_secret)
        self._controllers.cnpg_store = functools.partial(bucket_store, self.s3_url, s3_secret)
        self._controllers.cnpg_data_dir = self.workdir / "cnpg-data"
        self._controllers.poll_scale = self.time_scale

        async def start_controllers() -> None:
            assert self._controllers is not None
            self._controllers.start()

        self._loop.call(start_controllers())
        self._state.record("lab started")

    def _write_aws_files(self, s3_secret: str) -> None:
        creds = configparser.ConfigParser()
        creds["default"] = {
            "aws_access_key_id": files.S3_ACCESS_KEY,
            "aws_secret_access_key": s3_secret,
        }
        path = self.workdir / "secrets" / "aws-credentials"
        files.private(path, "")
        with path.open("w") as out:
            creds.write(out)
        config = self.workdir / "aws-config"
        config.write_text(f"[default]\nregion = {world.REGION}\nendpoint_url = {self.s3_url}\n")

    def _env(self) -> dict[str, str]:
        assert self.paths is not None
        return {
            "DRBOT_INVENTORY": str(self.inventory_path),
            "DRBOT_POLICY": str(self.policy_path),
            "DRBOT_KUBECONFIG": str(self.kubeconfig),
            "KUBECONFIG": str(self.kubeconfig),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.workdir / "secrets" / "aws-credentials"),
            "AWS_CONFIG_FILE": str(self.workdir / "aws-config"),
            "AWS_DEFAULT_REGION": world.REGION,
            "AWS_ENDPOINT_URL_S3": self.s3_url,
            "DRBOT_STATE_DIR": str(self.workdir / "worker-state"),
            "PATH": os.pathsep.join([str(self.paths.bin), os.environ.get("PATH", "")]),
            # Terraform's own login, as main.tf's provider block reads it (var.proxmox_*)
            "TF_VAR_proxmox_endpoint": self.pve_url,
            "TF_VAR_proxmox_api_token": f"{files.TERRAFORM_TOKEN_ID}={self._terraform_token}",
        }

    def exports(self) -> dict[str, str]:
        """What `python -m lab` tells a person to export: only variables drbot reads (the
        inventory already names the lab's endpoints, tokens and CA files), plus the quiet
        settings the demo uses, so that answers are not buried under log lines."""
        keep = ("DRBOT_INVENTORY", "DRBOT_POLICY", "DRBOT_KUBECONFIG", "KUBECONFIG", "PATH",
                "TF_VAR_proxmox_endpoint", "TF_VAR_proxmox_api_token")
        return {**{k: self.env[k] for k in keep}, **QUIET}

    def stop(self) -> None:
        """Stop every server, thread and process the lab started (idempotent)."""
        for api in (self._kube, self._pve):
            if api is not None:
                api.holds.release_all()  # a held request must not keep the loop from ending
        if self._loop is not None and self._controllers is not None:
            controllers = self._controllers

            async def stop_controllers() -> None:
                await controllers.stop()

            # the loop may be gone already; the processes still get stopped below
            with contextlib.suppress(Exception):
                self._loop.call(stop_controllers(), timeout=10)
            self._controllers = None
        for sshd in self._sshds.values():
            sshd.stop()
            sshd.release_port()  # the lab is gone: nobody needs its ports kept
        while self._servers:
            server = self._servers.pop()
            with contextlib.suppress(Exception):  # keep stopping the others
                server.stop()
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        self._started = False


# ------------------------------------------------------------------------- seeding


def seed_kube(kube: Any, objects: list[dict[str, Any]]) -> None:
    """Put the seed into the emulator before it serves (stamped as the API server would)."""
    import kmock

    from lab.kube import RESOURCES

    plurals = {(gv, kind): plural for gv, plural, kind, _, _ in RESOURCES}
    namespaced = {(gv, kind): ns for gv, _, kind, ns, _ in RESOURCES}
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for version, obj in enumerate(objects, start=1):
        gv, kind = obj["apiVersion"], obj["kind"]
        group, _, ver = gv.rpartition("/")
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", created)
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(version)
        ns = meta.get("namespace") if namespaced[(gv, kind)] else None
        kube.objects[kmock.resource(group, ver, plurals[(gv, kind)]), ns, meta["name"]] = obj


def make_pve(vm_uuids: dict[str, str], token: str, terraform_token: str) -> Any:
    """Two Proxmox hosts and the five K3s VMs, running."""
    from lab.pve import LabPve

    pve = LabPve(user="root@pam", password=secrets.token_hex(16), host="127.0.0.1", port=0)
    pve.time_scale = 0
    pve.cluster_name = "homelab"
    for host in world.HOSTS:
        pve.add_node(host)
    for spec in world.NODES:
        config = {
            "memory": 8192 if spec.server else 4096,
            "cores": 4,
            "agent": "1",
            "scsihw": "virtio-scsi-single",
            "scsi0": f"local-lvm:vm-{spec.vmid}-disk-0,size=64G",
            "net0": f"virtio=BC:24:11:00:00:{spec.vmid:02X},bridge=vmbr0",
            "smbios1": f"uuid={vm_uuids[spec.name]}",
            "tags": "k3s;terraform",
        }
        pve.add_vm(spec.vmid, spec.name, node=spec.host, status="running", config=config)
    pve.apitokens[files.PVE_TOKEN_ID] = token
    pve.apitokens[files.TERRAFORM_TOKEN_ID] = terraform_token
    return pve


def lab_store(endpoint: str, secret: str) -> Any:
    """The Longhorn bucket, as Longhorn's backup target reads it (with the lab's key)."""
    from adapters.s3 import ObjectStore, StoreConfig

    return ObjectStore(StoreConfig(f"s3://{world.BUCKETS['longhorn']}/", endpoint_url=endpoint,
                                   region=world.REGION, access_key=files.S3_ACCESS_KEY,
                                   secret_key=secret))


def bucket_store(endpoint: str, secret: str, bucket: str, prefix: str = "") -> Any:
    """A bucket of the lab's S3, as CNPG's barman-cloud reads it (with the lab's key)."""
    from adapters.s3 import ObjectStore, StoreConfig

    return ObjectStore(StoreConfig(f"s3://{bucket}/{prefix}", endpoint_url=endpoint,
                                   region=world.REGION, access_key=files.S3_ACCESS_KEY,
                                   secret_key=secret))


def seed_s3(now: datetime) -> None:
    """The lab's buckets and objects in moto's S3 backend of this process (the account moto
    serves any access key it does not know from its IAM)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    from lab import store

    store.seed(s3_backends[DEFAULT_ACCOUNT_ID]["aws"], now)


# ------------------------------------------------------------------------------ main


def main(workdir: Path, time_scale: float = 1.0,
         longhorn: world.LonghornVersion = world.LonghornVersion.V1_10) -> int:
    """`python -m lab`: start the lab, print the environment to use, run until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    try:
        with Lab(Path(workdir), time_scale=time_scale, longhorn=longhorn) as lab:
            print(
                f"drbot lab is up in {time.monotonic() - started:.1f}s "
                f"(workdir {lab.workdir}, time scale {time_scale}, Longhorn {longhorn}).",
                flush=True,
            )
            print("Use these variables in the shell that runs drbot:", flush=True)
            for key, value in lab.exports().items():
                print(f"export {key}={_quote(value)}", flush=True)
            print(f"Kubernetes {lab.kube_url}  Proxmox {lab.pve_url}  S3 {lab.s3_url}", flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            print("Stopping the lab...", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _quote(value: str) -> str:
    import shlex

    return shlex.quote(value)

"""Files the lab writes for drbot: kubeconfig, inventory, policy, secrets, the IaC projects, the
lab's programs and what the VMs' disks hold.

What is data lives in `lab/data/` and is copied as it is: the playbooks (`ansible/*.yml`), the
Terraform configuration (`terraform/main.tf`), Ansible's settings, the IaC repository's
.gitignore and the policy (`policy.yaml`, to which the runner's console login is added). What
depends on where the lab's servers listen (inventories, kubeconfigs, `lab.tf.json`, the state)
is computed here.

The Terraform and Ansible projects live in one Git repository at a fixed commit (the inventory's
`revision`), with everything a run writes (state, lock, artifacts) ignored so the checkout stays
clean. The programs in `bin/` (`terraform`, `flux-bootstrap`) run a `lab` module's `main()`
with the lab's Python. Each server VM's disk holds the admin kubeconfig K3s wrote there
(`world.K3S_KUBECONFIG`, naming `https://127.0.0.1:6443`); the lab's own kubeconfig is that file
as an operator fetched it, its server set to the lab's API. The site playbook fetches it from the
cluster-init server to `drbot_kubeconfig_dest` when that extravar is set, as drbot's
rebuild-cluster asks.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from lab import store, terraform_stub, world
from lab.seed.flux import BOOTSTRAP_NAME, FLEET_BRANCH, FLEET_PATH, FLEET_URL, git_credentials

GIT = "git"
PVE_TOKEN_ID = "drbot@pve!drbot"  # noqa: S105 (a token id)
# Terraform's own token (bpg/proxmox docs/index.md, "API Token Authentication"): drbot never
# hands Terraform its token; the worker's environment gives Terraform this one.
TERRAFORM_TOKEN_ID = "terraform@pve!provider"  # noqa: S105 (a token id)
S3_ACCESS_KEY = "lab-access-key"  # noqa: S105 (a key id)
# The lab's files that are data, not computed: the IaC project's playbooks, Terraform
# configuration and settings (data file -> its path in the IaC repository), and the policy.
DATA = Path(__file__).parent / "data"
IAC_FILES = {
    "terraform/main.tf": "terraform/main.tf",
    "ansible/site.yml": "ansible/site.yml",
    "ansible/k3s-join.yml": "ansible/k3s-join.yml",
    "ansible/etcd-fetch.yml": "ansible/etcd-fetch.yml",
    "ansible/ansible.cfg": "ansible/ansible.cfg",
    "iac.gitignore": ".gitignore",
}


@dataclass(frozen=True)
class Endpoints:
    """Where the lab's servers listen and the credentials they accept."""

    kube_url: str
    pve_url: str
    pve_ca_file: str
    pve_token: str
    s3_url: str
    s3_secret: str
    ssh_ports: dict[str, int]
    ssh_host_keys: dict[str, str]
    ssh_key_file: str = ""  # the key every VM's sshd accepts (the lab's own user)
    known_hosts_file: str = ""  # the VMs' host keys as first started


@dataclass(frozen=True)
class Paths:
    """Every file the lab wrote."""

    root: Path
    kubeconfig: Path
    inventory: Path
    policy: Path
    pve_token_file: Path
    s3_credentials: Path
    k3s_token_file: Path
    flux_secret_file: Path
    iac: Path
    terraform: Path
    ansible: Path
    ansible_inventory: Path
    bin: Path
    terraform_binary: Path
    flux_bootstrap: Path
    revision: str


def private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def write_yaml(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def kubeconfig(
    kube_url: str, token: str, name: str = "lab", user: str = "lab-admin"
) -> dict[str, Any]:
    """A kubeconfig with one cluster, user and context (the lab's API takes any bearer token)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": kube_url}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }


def k3s_kubeconfig(token: str) -> dict[str, Any]:
    """What K3s writes to a server's /etc/rancher/k3s/k3s.yaml: the local API, the admin user."""
    return kubeconfig(world.K3S_LOCAL_API, token, "default", "default")


def flux_bootstrap_argv(paths: Paths) -> list[str]:
    """`flux bootstrap git` for the homelab's fleet repository, run by the lab's program."""
    return [
        str(paths.flux_bootstrap),
        "git",
        f"--url={FLEET_URL}",
        f"--branch={FLEET_BRANCH}",
        f"--path={FLEET_PATH.removeprefix('./')}",
        f"--secret-name={BOOTSTRAP_NAME}",
        f"--kubeconfig={paths.kubeconfig}",
        "--silent",
    ]


def policy(console_login: str) -> dict[str, Any]:
    """The lab's policy (data/policy.yaml), with the console login of whoever runs the lab among
    alice's accounts, so a console session is alice unless it is bob's or carol's."""
    data = yaml.safe_load((DATA / "policy.yaml").read_text())
    alice = data["people"]["alice"]["accounts"]
    if f"console:{console_login}" not in alice and console_login not in ("bob", "carol"):
        alice.append(f"console:{console_login}")
    return data


def inventory(ep: Endpoints, paths: Paths) -> dict[str, Any]:
    def store_entry(kind: str, prefix: str = "") -> dict[str, Any]:
        return {
            "url": f"s3://{world.BUCKETS[kind]}/{prefix}",
            "endpoint_url": ep.s3_url,
            "region": world.REGION,
            "credentials_file": str(paths.s3_credentials),
        }

    return {
        "kubernetes": {"kubeconfig": str(paths.kubeconfig), "endpoints": [ep.kube_url]},
        "proxmox": {
            "endpoints": [ep.pve_url],
            "user": PVE_TOKEN_ID.split("!")[0],
            "token_name": PVE_TOKEN_ID.split("!")[1],
            "token_file": str(paths.pve_token_file),
            "ca_file": ep.pve_ca_file,
        },
        "hosts": list(world.HOSTS),
        "nodes": {
            spec.name: {
                "host": spec.host,
                "vmid": spec.vmid,
                "role": spec.role,
                "cluster_init": spec.cluster_init,
                "terraform_address": spec.terraform_address,
                "ansible_host": spec.name,
                "ssh_address": "127.0.0.1",
                "ssh_port": ep.ssh_ports[spec.name],
            }
            for spec in world.NODES
        },
        "drbot_nodes": list(world.DRBOT_NODES),
        "iac": {
            "terraform": {
                "dir": str(paths.terraform),
                "binary": str(paths.terraform_binary),
                "revision": paths.revision,
                "allow_local_state": True,
                "timeout": 600,
            },
            "ansible": {
                "dir": str(paths.ansible),
                "inventory": str(paths.ansible_inventory),
                "site_playbook": "site.yml",
                "join_playbook": "k3s-join.yml",
                "fetch_snapshots_playbook": "etcd-fetch.yml",
                "revision": paths.revision,
                "timeout": 600,
            },
            "k3s_token_file": str(paths.k3s_token_file),
            "ssh_key_file": ep.ssh_key_file,
            "ssh_user": getpass.getuser(),
            "known_hosts_file": ep.known_hosts_file,
            "flux_bootstrap": flux_bootstrap_argv(paths),
            "flux_secret_file": str(paths.flux_secret_file),
        },
        "backups": {
            "longhorn_store": store_entry("longhorn"),
            "cnpg_store": store_entry("cnpg"),
            "etcd_store": store_entry("etcd", world.ETCD_FOLDER),
            "check_interval_seconds": 60,
            "verify": {"scratch_dir": str(paths.root / "verify-scratch")},
            # a check with an expected value, on the files the lab's volumes hold
            "drill": {"longhorn_checks": {"apps/web-data": [
                {"name": "README", "command": ["cat", "/drill/README"],
                 "expect": "apps/web-data: files of the lab's volume"},
                {"name": "files and bytes", "command": [
                    "sh", "-c", 'find "$0" -xdev -type f | wc -l; '
                    'find "$0" -xdev -type f -exec cat {} + | wc -c', "/drill"]}]},
                # SQL run in the recovered cluster (lab/cnpg_data.py seeds what it holds)
                "cnpg_checks": {"databases/pg-main": [
                    {"name": "orders", "query": "SELECT count(*) FROM orders",
                     "expect": "1200"},
                    {"name": "newest order", "query": "SELECT max(placed_at) FROM orders",
                     "max_age_hours": 26}]}},
        },
        "alerts": {"console": "lab-alerts"},
    }


def terraform_config(ep: Endpoints, paths: Paths) -> dict[str, Any]:
    return {
        "provider": {
            "endpoint": ep.pve_url,
            "api_token_id": PVE_TOKEN_ID,
            "api_token_file": str(paths.pve_token_file),
            "ca_file": ep.pve_ca_file,
        },
        "vms": {
            spec.name: {
                "node_name": spec.host,
                "vm_id": spec.vmid,
                "memory": 8192 if spec.server else 4096,
                "cores": 4,
                "disk_gb": 64,
                "ssh_host_key": ep.ssh_host_keys[spec.name],
            }
            for spec in world.NODES
        },
    }


def initial_state(vm_uuids: dict[str, str]) -> dict[str, Any]:
    state = terraform_stub.load_state(Path("/nonexistent"))
    state["lineage"] = world.stable_uuid("tf-lineage")
    instances = {
        spec.name: {
            "id": str(spec.vmid),
            "vm_id": spec.vmid,
            "name": spec.name,
            "node_name": spec.host,
            "smbios": [{"uuid": vm_uuids[spec.name]}],
            "started": True,
            "tags": ["k3s", "terraform"],
        }
        for spec in world.NODES
    }
    return {
        **state,
        "serial": 1,
        "resources": [
            {
                "mode": "managed",
                "type": terraform_stub.RESOURCE_TYPE,
                "name": terraform_stub.RESOURCE_NAME,
                "provider": terraform_stub.PROVIDER,
                "instances": [
                    {
                        "index_key": key,
                        "schema_version": 0,
                        "attributes": attrs,
                        "sensitive_attributes": [],
                    }
                    for key, attrs in instances.items()
                ],
            }
        ],
    }


def ansible_inventory(ep: Endpoints, paths: Paths) -> dict[str, Any]:
    def host(spec: world.NodeSpec) -> dict[str, Any]:
        return {
            "node_name": spec.name,
            "node_role": spec.role,
            "node_ip": spec.ip,
            "vmid": spec.vmid,
            "pve_host": spec.host,
            "ssh_port": ep.ssh_ports[spec.name],
            "k3s_cluster_init": spec.cluster_init,
            "k3s_data_dir": str(paths.root / "vms" / spec.name / "var/lib/rancher/k3s"),
            "k3s_kubeconfig": str(paths.root / "vms" / spec.name / world.K3S_KUBECONFIG),
        }

    return {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "kube_api": ep.kube_url,
                "pve_api": ep.pve_url,
                "pve_ca_file": ep.pve_ca_file,
                "pve_token_id": PVE_TOKEN_ID,
                "pve_token_file": str(paths.pve_token_file),
                "k3s_version": world.K3S_VERSION,
                # what the join playbook writes as K3s would (lab/data/ansible/k3s-join.yml)
                "k3s_local_api": world.K3S_LOCAL_API,
                "k3s_node_finalizer": world.NODE_FINALIZER,
                "k3s_etcd_finalizer": world.ETCD_FINALIZER,
            },
            "children": {
                "k3s_cluster": {
                    "children": {
                        "k3s_servers": {
                            "hosts": {s.name: host(s) for s in world.NODES if s.server}
                        },
                        "k3s_agents": {
                            "hosts": {s.name: host(s) for s in world.NODES if not s.server}
                        },
                    }
                }
            },
        }
    }


def copy_iac_files(iac: Path) -> None:
    """Copy the IaC project's files (`IAC_FILES`) from the lab's data folder into `iac`."""
    for source, dest in IAC_FILES.items():
        target = iac / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((DATA / source).read_bytes())


def git_commit(repo: Path) -> str:
    """Commit everything with a fixed author and date; returns the commit id."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "homelab",
        "GIT_AUTHOR_EMAIL": "homelab@lab.invalid",
        "GIT_COMMITTER_NAME": "homelab",
        "GIT_COMMITTER_EMAIL": "homelab@lab.invalid",
        "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
    }
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-q", "-m", "homelab infrastructure"],
    ):
        subprocess.run(
            [GIT, "-C", str(repo), *args], check=True, env=env, stdout=subprocess.DEVNULL
        )
    out = subprocess.run(
        [GIT, "-C", str(repo), "rev-parse", "HEAD"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def lab_program(path: Path, module: str) -> None:
    """An executable in the lab's bin dir: `main()` of the lab module `module`, the lab's Python."""
    project = Path(__file__).resolve().parents[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'#!{sys.executable}\n"""The lab\'s {path.name} (see the module {module})."""\n'
        "import sys\n"
        f"sys.path.insert(0, {str(project)!r})\n"
        f"from {module} import main\n"
        "sys.exit(main())\n"
    )
    path.chmod(0o755)


def write_vm_disks(root: Path, now: datetime, kube_token: str) -> None:
    """What the server VMs hold on disk: local etcd snapshots and K3s's admin kubeconfig."""
    for spec in world.NODES:
        if not spec.server:
            continue
        disk = root / "vms" / spec.name
        private(disk / world.K3S_KUBECONFIG, yaml.safe_dump(k3s_kubeconfig(kube_token)))
        snap_dir = disk / world.SNAPSHOT_DIR
        snap_dir.mkdir(parents=True, exist_ok=True)
        for when in world.local_snapshot_times(now):
            (snap_dir / world.snapshot_name(spec.name, when)).write_bytes(store.SNAPSHOT_BYTES)


def write_all(
    root: Path,
    ep: Endpoints,
    vm_uuids: dict[str, str],
    now: datetime,
    kube_token: str,
    k3s_token: str,
    git_key: str,
) -> Paths:
    """Write every file of the lab under `root`; returns their paths. `git_key` is Flux's fake
    Git deploy key, the one the seed's Secret holds."""
    iac = root / "iac"
    tf_dir, ans_dir, bin_dir = iac / "terraform", iac / "ansible", root / "bin"
    paths = Paths(
        root=root,
        kubeconfig=root / "kubeconfig",
        inventory=root / "inventory.yaml",
        policy=root / "policy.yaml",
        pve_token_file=root / "secrets" / "pve-token",
        s3_credentials=root / "secrets" / "s3-credentials",
        k3s_token_file=root / "secrets" / "k3s-token",
        flux_secret_file=root / "secrets" / "flux-git-secret.yaml",
        iac=iac,
        terraform=tf_dir,
        ansible=ans_dir,
        ansible_inventory=ans_dir / "inventory.yml",
        bin=bin_dir,
        terraform_binary=bin_dir / "terraform",
        flux_bootstrap=bin_dir / "flux-bootstrap",
        revision="",
    )
    private(paths.pve_token_file, ep.pve_token + "\n")
    private(paths.s3_credentials, f"access_key={S3_ACCESS_KEY}\nsecret_key={ep.s3_secret}\n")
    private(paths.k3s_token_file, k3s_token + "\n")
    private(paths.flux_secret_file, yaml.safe_dump(git_credentials(git_key), sort_keys=False))
    private(paths.kubeconfig, yaml.safe_dump(kubeconfig(ep.kube_url, kube_token), sort_keys=False))
    write_yaml(paths.policy, policy(getpass.getuser()))

    copy_iac_files(iac)
    (tf_dir / terraform_stub.CONFIG).write_text(
        json.dumps(terraform_config(ep, paths), indent=2) + "\n"
    )
    (tf_dir / ".terraform").mkdir(exist_ok=True)
    (tf_dir / terraform_stub.STATE).write_text(json.dumps(initial_state(vm_uuids), indent=2) + "\n")
    write_yaml(paths.ansible_inventory, ansible_inventory(ep, paths))
    revision = git_commit(iac)

    terraform_stub.launcher.write(paths.terraform_binary)
    lab_program(paths.flux_bootstrap, "lab.flux_bootstrap")
    write_vm_disks(root, now, kube_token)
    paths = Paths(**{**vars(paths), "revision": revision})
    write_yaml(paths.inventory, inventory(ep, paths))
    return paths

"""Files the lab writes for drbot: kubeconfig, inventory, policy, secrets, the IaC projects, the
lab's programs and what the VMs' disks hold.

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
S3_ACCESS_KEY = "lab-access-key"  # noqa: S105 (a key id)


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
    admin = ["viewer", "operator", "admin"]
    approval = {"allow": ["admin"], "approvals": 1, "approvers": ["role:admin"], "expires": "30m"}
    alice = ["console:alice", "slack:T0LAB/UALICE", "discord:1001"]
    if f"console:{console_login}" not in alice and console_login not in ("bob", "carol"):
        alice.append(f"console:{console_login}")
    return {
        "admin_contact": "alice (#homelab-ops)",
        "people": {
            "alice": {"accounts": alice, "roles": ["admin"]},
            "bob": {
                "accounts": ["console:bob", "slack:T0LAB/UBOB", "discord:1002"],
                "roles": ["admin"],
            },
            "carol": {
                "accounts": ["console:carol", "slack:T0LAB/UCAROL", "discord:1003"],
                "roles": ["operator"],
            },
        },
        "grants": {},
        "commands": {
            "help": {"allow": admin},
            "status": {"allow": admin},
            "jobs": {"allow": admin},
            "job": {"allow": admin},
            "backups": {"allow": admin},
            "reconcile": {"allow": ["operator", "admin"]},
            "cancel": {"allow": ["operator", "admin"]},
            "retry": {"allow": ["operator", "admin"]},
            "approve": {"allow": ["operator", "admin"]},
            "deny": {"allow": ["operator", "admin"]},
            "confirm": {"allow": ["operator", "admin"]},
            "locks": {"allow": admin},
            "audit": {"allow": ["admin"]},
            "unlock": dict(approval),
            "restore": dict(approval),
            "rebuild-node": dict(approval),
            "rebuild-host": dict(approval),
            "rebuild-cluster": {
                "allow": ["admin"],
                "approvals": 2,
                "approvers": ["role:admin", "person:carol"],
                "confirm": "rebuild the whole cluster",
                "expires": "30m",
            },
            "etcd-sync": {"allow": ["operator", "admin"]},
            "backup-now": {"allow": ["operator", "admin"]},
            "doctor": {"allow": ["operator", "admin"]},
            "verify": {"allow": ["operator", "admin"]},
            "drill": {"allow": ["operator", "admin"]},
        },
        "lab": True,
    }


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


MAIN_TF = """\
# The lab's VMs. `terraform` on the lab's PATH reads the same values from lab.tf.json.
terraform {
  required_providers {
    proxmox = { source = "bpg/proxmox", version = "0.66.1" }
  }
}

# bpg/proxmox's own login (docs/index.md): drbot never passes its token to Terraform.
provider "proxmox" {
  endpoint  = var.proxmox_endpoint
  api_token = var.proxmox_api_token
}

variable "proxmox_endpoint" {
  type = string
}

variable "proxmox_api_token" {
  type      = string
  sensitive = true
}

variable "nodes" {
  type = map(object({ node_name = string, vm_id = number, memory = number }))
}

resource "proxmox_virtual_environment_vm" "k3s" {
  for_each  = var.nodes
  name      = each.key
  node_name = each.value.node_name
  vm_id     = each.value.vm_id
  memory { dedicated = each.value.memory }
}
"""


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


def wait_for_ssh(timeout: int) -> dict[str, Any]:
    """The task every lab playbook starts with: the VM's SSH endpoint answers."""
    return {
        "name": "Wait for SSH on the VM",
        "ansible.builtin.wait_for": {
            "host": "127.0.0.1",
            "port": "{{ ssh_port }}",
            "search_regex": "OpenSSH",
            "timeout": f"{{{{ ssh_timeout | default({timeout}) }}}}",
        },
    }


def pve_request(task: str, path: str, register: str) -> dict[str, Any]:
    """A Proxmox API read; no_log keeps the token out of the events, the next task reports."""
    return {
        "name": task,
        "ansible.builtin.uri": {
            "url": "{{ pve_api }}/api2/json" + path,
            "headers": {
                "Authorization": "PVEAPIToken={{ pve_token_id }}="
                "{{ lookup('ansible.builtin.file', pve_token_file) }}"
            },
            "ca_path": "{{ pve_ca_file }}",
            "return_content": True,
            "status_code": [200, 500],
        },
        "register": register,
        "no_log": True,
    }


def admin_kubeconfig_tasks() -> list[dict[str, Any]]:
    """A K3s server writes its admin kubeconfig with a credential of its own on start."""
    return [
        {
            "name": "Create K3s's config directory",
            "ansible.builtin.file": {"path": "{{ k3s_kubeconfig | dirname }}", "state": "directory",
                                     "mode": "0755"},
            "when": "node_role == 'server'",
        },
        {
            "name": "K3s writes its admin kubeconfig",
            "ansible.builtin.copy": {
                "content": "{{ k3s_admin_kubeconfig | to_nice_yaml }}",
                "dest": "{{ k3s_kubeconfig }}",
                "mode": "0600",
            },
            "when": "node_role == 'server'",
            "no_log": True,
        },
    ]


def join_playbook() -> list[dict[str, Any]]:
    vm_path = "/nodes/{{ pve_host }}/qemu/{{ vmid }}"
    secret_url = "{{ kube_api }}/api/v1/namespaces/kube-system/secrets/{{ node_name }}" + (
        ".node-password.k3s"
    )
    server_labels = (
        "{'node-role.kubernetes.io/control-plane': 'true', "
        "'node-role.kubernetes.io/master': 'true', "
        "'node-role.kubernetes.io/etcd': 'true'}"
    )
    return [
        {
            "name": "Install K3s and join the cluster",
            "hosts": "k3s_cluster",
            "gather_facts": False,
            "vars": {
                "k3s_admin_kubeconfig": k3s_kubeconfig(
                    "{{ lookup('ansible.builtin.password', '/dev/null', "
                    "chars=['hexdigits'], length=32) | lower }}"
                )
            },
            "tasks": [
                wait_for_ssh(60),
                pve_request(
                    "Read the VM status from Proxmox", vm_path + "/status/current", "vm_status"
                ),
                {
                    "name": "Check the VM runs",
                    "ansible.builtin.assert": {
                        "that": [
                            "vm_status.status == 200",
                            "vm_status.json.data.status == 'running'",
                        ],
                        "fail_msg": "VM {{ vmid }} ({{ node_name }}) on {{ pve_host }} is not "
                        "running "
                        "(HTTP {{ vm_status.status }})",
                        "quiet": True,
                    },
                },
                pve_request("Read the VM config from Proxmox", vm_path + "/config", "vm_config"),
                {
                    "name": "Derive this VM's node password",
                    "ansible.builtin.set_fact": {
                        "vm_uuid": "{{ (vm_config.json.data.smbios1.split('uuid=') | last)"
                        ".split(',')"
                        " | first }}"
                    },
                },
                {
                    "name": "Hash the node password",
                    "ansible.builtin.set_fact": {"node_password": "{{ vm_uuid | hash('sha256') }}"},
                },
                {
                    "name": "Look up the node password entry",
                    "ansible.builtin.uri": {
                        "url": secret_url,
                        "status_code": [200, 404],
                        "return_content": True,
                    },
                    "register": "node_secret",
                    "no_log": True,
                },
                {
                    "name": "Refuse a different machine with the same node name",
                    "ansible.builtin.fail": {
                        "msg": "Node password rejected, duplicate hostname or contents of "
                        "'/etc/rancher/node/password' may not match server node-passwd entry, "
                        "try enabling a unique node name with the --with-node-id flag"
                    },
                    "when": "node_secret.status == 200 and "
                    "(node_secret.json.data.hash | b64decode) != node_password",
                },
                {
                    "name": "Register the node password",
                    "ansible.builtin.uri": {
                        "url": "{{ kube_api }}/api/v1/namespaces/kube-system/secrets",
                        "method": "POST",
                        "body_format": "json",
                        "status_code": [201, 409],
                        "body": {
                            "apiVersion": "v1",
                            "kind": "Secret",
                            "type": "k3s.cattle.io/node-password",
                            "metadata": {
                                "name": "{{ node_name }}.node-password.k3s",
                                "namespace": "kube-system",
                            },
                            "data": {"hash": "{{ node_password | b64encode }}"},
                        },
                    },
                    "when": "node_secret.status == 404",
                    "no_log": True,
                },
                {
                    "name": "Start K3s (the kubelet registers the Node)",
                    "ansible.builtin.uri": {
                        "url": "{{ kube_api }}/api/v1/nodes",
                        "method": "POST",
                        "body_format": "json",
                        "status_code": [201, 409],
                        "body": {
                            "apiVersion": "v1",
                            "kind": "Node",
                            "metadata": {
                                "name": "{{ node_name }}",
                                "labels": "{{ {'kubernetes.io/hostname': node_name, "
                                "'kubernetes.io/os': 'linux', "
                                "'kubernetes.io/arch': 'amd64', "
                                "'lab.drbot/proxmox-host': pve_host} | "
                                "combine("
                                + server_labels
                                + " if node_role == 'server' else {}) }}",
                                "annotations": {
                                    "k3s.io/hostname": "{{ node_name }}",
                                    "k3s.io/internal-ip": "{{ node_ip }}",
                                    "k3s.io/node-args": '["{{ node_role }}"]',
                                },
                                "finalizers": "{{ ['"
                                + world.NODE_FINALIZER
                                + "'] + (['"
                                + world.ETCD_FINALIZER
                                + "'] if node_role == 'server' else []) }}",
                            },
                            "spec": {"providerID": "k3s://{{ node_name }}"},
                            "status": {
                                "conditions": [
                                    {
                                        "type": "Ready",
                                        "status": "False",
                                        "reason": "KubeletNotReady",
                                        "message": "container runtime network not ready: "
                                        "NetworkReady=false",
                                    }
                                ],
                                "addresses": [
                                    {"type": "InternalIP", "address": "{{ node_ip }}"},
                                    {"type": "Hostname", "address": "{{ node_name }}"},
                                ],
                                "nodeInfo": {
                                    "architecture": "amd64",
                                    "bootID": "{{ 99999999 | random | to_uuid }}",
                                    "containerRuntimeVersion": "containerd://1.7.21-k3s2",
                                    "kernelVersion": "6.1.0-26-amd64",
                                    "kubeProxyVersion": "{{ k3s_version }}",
                                    "kubeletVersion": "{{ k3s_version }}",
                                    "machineID": "{{ node_password[:32] }}",
                                    "operatingSystem": "linux",
                                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "systemUUID": "{{ vm_uuid }}",
                                },
                            },
                        },
                    },
                    "register": "node_created",
                    "changed_when": "node_created.status == 201",
                },
                *admin_kubeconfig_tasks(),
            ],
        }
    ]


def site_playbook() -> list[dict[str, Any]]:
    fetch_when = "drbot_kubeconfig_dest is defined and k3s_cluster_init | bool"
    return [
        {
            "name": "Base setup",
            "hosts": "k3s_cluster",
            "gather_facts": False,
            "tasks": [
                wait_for_ssh(60)
            ],
        },
        {"ansible.builtin.import_playbook": "k3s-join.yml"},
        {
            "name": "Fetch the new cluster's kubeconfig for drbot",
            "hosts": "k3s_servers",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Fetch k3s.yaml from the cluster-init server",
                    "ansible.builtin.fetch": {
                        "src": "{{ k3s_kubeconfig }}",
                        "dest": "{{ drbot_kubeconfig_dest }}",
                        "flat": True,
                    },
                    "when": fetch_when,
                },
                {
                    "name": "Keep the fetched kubeconfig private",
                    "ansible.builtin.file": {"path": "{{ drbot_kubeconfig_dest }}", "mode": "0600"},
                    "delegate_to": "localhost",
                    "when": fetch_when,
                },
            ],
        },
    ]


def fetch_playbook() -> list[dict[str, Any]]:
    return [
        {
            "name": "Fetch K3s etcd snapshots",
            "hosts": "k3s_servers",
            "gather_facts": False,
            "tasks": [
                wait_for_ssh(10),
                {
                    "name": "Find local snapshots",
                    "ansible.builtin.find": {
                        "paths": "{{ k3s_data_dir }}/server/db/snapshots",
                        "patterns": ["etcd-snapshot-*", "on-demand-*"],
                    },
                    "register": "snapshots",
                },
                {
                    "name": "Fetch snapshots",
                    "ansible.builtin.fetch": {
                        "src": "{{ item.path }}",
                        "dest": "{{ fetch_dest }}/{{ inventory_hostname }}/",
                        "flat": True,
                    },
                    "loop": "{{ snapshots.files }}",
                    "loop_control": {"label": "{{ item.path | basename }}"},
                },
            ],
        }
    ]


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

    tf_dir.mkdir(parents=True, exist_ok=True)
    (tf_dir / "main.tf").write_text(MAIN_TF)
    (tf_dir / terraform_stub.CONFIG).write_text(
        json.dumps(terraform_config(ep, paths), indent=2) + "\n"
    )
    (tf_dir / ".terraform").mkdir(exist_ok=True)
    (tf_dir / terraform_stub.STATE).write_text(json.dumps(initial_state(vm_uuids), indent=2) + "\n")
    write_yaml(paths.ansible_inventory, ansible_inventory(ep, paths))
    write_yaml(ans_dir / "site.yml", site_playbook())
    write_yaml(ans_dir / "k3s-join.yml", join_playbook())
    write_yaml(ans_dir / "etcd-fetch.yml", fetch_playbook())
    (ans_dir / "ansible.cfg").write_text(
        "[defaults]\nhost_key_checking = True\nretry_files_enabled = False\n"
        "interpreter_python = auto_silent\n"
    )
    (iac / ".gitignore").write_text(
        "*.tfstate\n*.tfstate.*\n.terraform/\n.terraform.lock.hcl\n"
        ".terraform.tfstate.lock.info\nartifacts/\nenv/\n*.retry\n"
    )
    revision = git_commit(iac)

    lab_program(paths.terraform_binary, "lab.terraform_stub")
    lab_program(paths.flux_bootstrap, "lab.flux_bootstrap")
    write_vm_disks(root, now, kube_token)
    paths = Paths(**{**vars(paths), "revision": revision})
    write_yaml(paths.inventory, inventory(ep, paths))
    return paths

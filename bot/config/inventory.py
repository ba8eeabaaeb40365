"""The inventory file: what exists in the homelab and how drbot reaches it.

Chat arguments only ever select entries of this file (a node, a host, a backup); addresses,
Terraform resources, playbooks and extravars come from here, never from chat text.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.config.yamlfile import load_model

NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubernetesTarget(Strict):
    kubeconfig: str | None = Field(None, description="kubeconfig file; in-cluster account if unset")
    endpoints: list[str] = Field(default_factory=list,
                                 description="API servers tried in turn (one per K3s server)")
    ca_file: str | None = None


class Flux(Strict):
    timeout_seconds: float = Field(300, gt=0, description="how long a reconcile may take")
    poll_seconds: float = Field(2.0, gt=0, description="how often a reconcile is checked")


class ProxmoxTarget(Strict):
    endpoints: list[str] = Field(min_length=1, description="https://host:8006 URLs tried in turn")
    user: str = "drbot@pve"
    token_name: str = "drbot"  # noqa: S105  (a token id, not a secret)
    token_file: str = Field(description="file holding the API token secret")
    ca_file: str | None = None


class Node(Strict):
    host: str = Field(description="the Proxmox host the VM runs on")
    vmid: int = Field(gt=0)
    role: Literal["server", "agent"]
    cluster_init: bool = False
    terraform_address: str
    ansible_host: str
    ssh_address: str = ""
    ssh_port: int = 22


class Terraform(Strict):
    dir: str
    binary: str = "terraform"
    revision: str | None = Field(None, description="Git commit the checkout must be at")
    allow_local_state: bool = False
    plugin_cache: str | None = None
    timeout: int = 3600


class Ansible(Strict):
    dir: str
    inventory: str
    site_playbook: str = "site.yml"
    join_playbook: str = "k3s-join.yml"
    fetch_snapshots_playbook: str = "etcd-fetch.yml"
    revision: str | None = None
    extravars: dict[str, str | int | bool] = Field(default_factory=dict)
    timeout: int = 3600


class Iac(Strict):
    terraform: Terraform
    ansible: Ansible
    ssh_key_file: str | None = None
    vault_password_file: str | None = None
    k3s_token_file: str | None = None
    flux_bootstrap: list[str] = Field(default_factory=list,
                                      description="argument list of the Flux bootstrap command")
    flux_secret_file: str | None = None

    def job_dir(self, job_id: str) -> str:
        """Where a job keeps its files on the worker: Ansible artifacts, its known_hosts, fetched
        etcd snapshots, a fetched kubeconfig. Under the Ansible project's ``artifacts/`` (which its
        checkout ignores); kept while the job may be retried, removed when it ends for good."""
        return os.path.join(self.ansible.dir, "artifacts", f"drbot-{job_id}")


class Store(Strict):
    url: str = Field(description="s3://bucket/prefix, nfs:///mnt/path or file:///path")
    endpoint_url: str | None = None
    region: str = "us-east-1"
    credentials_file: str | None = Field(None, description="file with access_key/secret_key lines")
    ca_file: str | None = None


class BackupPolicy(Strict):
    max_age_hours: float = 26.0
    retention_days: int = 7
    exclude: list[str] = Field(default_factory=list)
    overrides: dict[str, dict[str, float]] = Field(default_factory=dict)


class SqlCheck(Strict):
    """A read-only query a CNPG verification runs on the restored database."""

    name: str
    query: str
    database: str = "postgres"
    expect: str | None = Field(None, description="the first value must equal this")
    max_age_hours: float | None = Field(None, gt=0, description="the query returns a time; "
                                        "it may be at most this old")


class Verify(Strict):
    """How /dr verify proves backups restorable on the worker (see docs/backups.md)."""

    scratch_dir: str = Field("/var/tmp/drbot-verify", description="where restored data goes; "
                             "removed after each verification")
    scratch_max_gb: float = Field(0, ge=0, description="most scratch space one verification "
                                  "may use (0: whatever is free)")
    max_mb_per_second: float = Field(0, ge=0, description="read rate cap (0: none)")
    daily_budget_gb: float = Field(0, ge=0, description="scheduled verifications stop for the "
                                   "day once they read this much (0: no budget)")
    deep: bool = Field(True, description="scheduled Longhorn verifications fsck the image")
    longhorn_workers: int = Field(8, ge=1, le=64)
    postgres_bin_dir: str = "/usr/lib/postgresql/{major}/bin"
    postgres_user: str = Field("postgres", description="runs the throwaway PostgreSQL when "
                               "the worker is root")
    barman_dir: str | None = None
    etcd_bin_dir: str | None = None
    recovery_timeout_seconds: int = Field(3600, gt=0)
    cnpg_checks: dict[str, list[SqlCheck]] = Field(default_factory=dict,
                                                   description="per CNPG server name")


class Backups(Strict):
    longhorn_store: Store | None = None
    cnpg_store: Store | None = None
    etcd_store: Store | None = None
    longhorn: BackupPolicy = BackupPolicy()
    cnpg: BackupPolicy = BackupPolicy()
    etcd: BackupPolicy = BackupPolicy(max_age_hours=13.0, retention_days=2)
    check_interval_seconds: int = 300
    reminder_hours: float = 12.0
    heartbeat_url: str | None = None
    verify_every: float = Field(0, ge=0, description="days: every object is verified "
                                "restorable at least this often (0: no rotation, no alert)")
    verify: Verify = Verify()
    alert_retention: bool = Field(False, description="also alert on retention gaps (else they "
                                                     "show in /dr backups and metrics only)")


class Inventory(Strict):
    kubernetes: KubernetesTarget = KubernetesTarget()
    flux: Flux = Flux()
    proxmox: ProxmoxTarget | None = None
    hosts: list[str] = Field(default_factory=list, description="Proxmox hosts")
    nodes: dict[str, Node] = Field(default_factory=dict)
    drbot_nodes: list[str] = Field(default_factory=list,
                                   description="K3s nodes running drbot's worker or Redis")
    iac: Iac | None = None
    backups: Backups = Backups()
    alerts: dict[str, str] = Field(default_factory=dict,
                                   description="alert channel per frontend: {slack: C123, ...}")

    @field_validator("nodes")
    @classmethod
    def _node_names(cls, nodes: dict[str, Node]) -> dict[str, Node]:
        for name in nodes:
            if not NAME.match(name):
                raise ValueError(f"node name {name!r} is not a Kubernetes node name "
                                 "(lowercase letters, digits, '-' and '.')")
        return nodes

    @model_validator(mode="after")
    def _hosts_known(self) -> Inventory:
        for name, node in self.nodes.items():
            if self.hosts and node.host not in self.hosts:
                raise ValueError(f"nodes.{name}.host {node.host!r} is not listed under hosts "
                                 f"({', '.join(self.hosts)})")
        for name in self.drbot_nodes:
            if self.nodes and name not in self.nodes:
                raise ValueError(f"drbot_nodes: {name!r} is not a node of the inventory")
        return self


def load_inventory(path: str | Path | None) -> Inventory:
    """An empty inventory when no file is configured (the console with only Flux, say)."""
    return load_model(path, Inventory) if path else Inventory()

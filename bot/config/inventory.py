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

from bot.config.yamlfile import Strict, load_model

NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


class KubernetesTarget(Strict):
    """How the worker reaches the cluster's API."""

    kubeconfig: str | None = Field(None, description="kubeconfig file; in-cluster account if unset")
    endpoints: list[str] = Field(default_factory=list,
                                 description="API servers tried in turn (one per K3s server); "
                                             "unset: the kubeconfig's server")
    ca_file: str | None = Field(None, description="CA bundle of the API servers (else the "
                                                  "kubeconfig's); TLS is always verified")


class Flux(Strict):
    """How long drbot waits for Flux."""

    timeout_seconds: float = Field(300, gt=0, description="how long a reconcile may take")
    poll_seconds: float = Field(2.0, gt=0, description="how often a reconcile is checked")


class ProxmoxTarget(Strict):
    """The Proxmox VE API and drbot's API token (`pveum user token add drbot@pve drbot`)."""

    endpoints: list[str] = Field(min_length=1, description="https://host:8006 URLs tried in turn")
    user: str = Field("drbot@pve", description="the token's user, with its realm")
    token_name: str = Field("drbot", description="the token's name (its id is "  # noqa: S105
                                                 "user!token_name)")
    token_file: str = Field(description="file holding the API token secret")
    ca_file: str | None = Field(None, description="CA bundle of the PVE certificates (the "
                                                  "cluster's /etc/pve/pve-root-ca.pem)")


class Node(Strict):
    """One K3s node and the VM it runs on; the key is the Kubernetes Node name."""

    host: str = Field(description="the Proxmox host the VM runs on")
    vmid: int = Field(gt=0, description="the VM's id in Proxmox (`qm list`)")
    role: Literal["server", "agent"] = Field(description="K3s server (etcd member) or agent")
    cluster_init: bool = Field(False, description="the server that ran --cluster-init first")
    terraform_address: str = Field(description='the VM\'s address in Terraform state, e.g. '
                                               'proxmox_virtual_environment_vm.k3s["name"]')
    ansible_host: str = Field(description="the host's name in the Ansible inventory")
    ssh_address: str = Field("", description="address SSH reaches it at (else ansible_host)")
    ssh_port: int = Field(22, description="its SSH port")


class Terraform(Strict):
    """The Terraform project that builds the VMs."""

    dir: str = Field(description="the project's directory (a Git checkout)")
    binary: str = Field("terraform", description="the terraform (or tofu) executable")
    revision: str | None = Field(None, description="Git commit the checkout must be at")
    allow_local_state: bool = Field(False, description="accept local state (else a remote "
                                                       "backend is required)")
    plugin_cache: str | None = Field(None, description="TF_PLUGIN_CACHE_DIR for its providers")
    timeout: int = Field(3600, description="seconds one Terraform run may take")


class Ansible(Strict):
    """The Ansible project that configures the VMs; drbot runs three of its playbooks."""

    dir: str = Field(description="the project's directory (a Git checkout)")
    inventory: str = Field(description="its inventory (file or directory)")
    site_playbook: str = Field("site.yml", description="configures every node (rebuild-cluster, "
                                                       "rebuild-host); see examples/playbooks")
    join_playbook: str = Field("k3s-join.yml", description="joins one rebuilt node, limited to it "
                                                           "(rebuild-node); see examples/playbooks")
    fetch_snapshots_playbook: str = Field("etcd-fetch.yml", description="copies the servers' etcd "
                                          "snapshots to fetch_dest (etcd-sync); see "
                                          "examples/playbooks")
    revision: str | None = Field(None, description="Git commit the checkout must be at")
    extravars: dict[str, str | int | bool] = Field(default_factory=dict,
                                                   description="extra variables for every run")
    timeout: int = Field(3600, description="seconds one playbook run may take")


class Iac(Strict):
    """Infrastructure as code: where the projects are and the secrets they need."""

    terraform: Terraform
    ansible: Ansible
    ssh_key_file: str | None = Field(None, description="private key Ansible logs in to the "
                                                        "nodes with")
    ssh_user: str = Field("root", description="the login on the nodes (drbot doctor checks it "
                                              "with ssh_key_file)")
    known_hosts_file: str | None = Field(None, description="the nodes' SSH host keys "
                                                           "(known_hosts format); drbot doctor "
                                                           "checks each node still serves its")
    vault_password_file: str | None = Field(None, description="Ansible vault password file")
    k3s_token_file: str | None = Field(None, description="the cluster's K3s token (from "
                                                         "/var/lib/rancher/k3s/server/token)")
    flux_bootstrap: list[str] = Field(default_factory=list,
                                      description="argument list of the Flux bootstrap command")
    flux_secret_file: str | None = Field(None, description="Flux's Git credential Secret "
                                                           "(YAML), re-applied after a bootstrap")

    def job_dir(self, job_id: str) -> str:
        """Where a job keeps its files on the worker: Ansible artifacts, its known_hosts, fetched
        etcd snapshots, a fetched kubeconfig. Under the Ansible project's ``artifacts/`` (which its
        checkout ignores); kept while the job may be retried, removed when it ends for good."""
        return os.path.join(self.ansible.dir, "artifacts", f"drbot-{job_id}")


class Store(Strict):
    """An object store (S3-compatible) or a mounted path holding backups."""

    url: str = Field(description="s3://bucket/prefix, nfs:///mnt/path or file:///path")
    endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, Garage, ...); "
                                                       "unset: AWS")
    region: str = Field("us-east-1", description="S3 region")
    credentials_file: str | None = Field(None, description="access_key=/secret_key= lines, or "
                                         "an AWS shared-credentials file; unset: AWS_* variables")
    profile: str | None = Field(None, description="section of an AWS shared-credentials file "
                                                  "(default: default)")
    ca_file: str | None = Field(None, description="CA bundle of the S3 endpoint")


class BackupPolicy(Strict):
    """How fresh and how long-kept one kind of backup must be."""

    max_age_hours: float = Field(26.0, description="older newest backup: missed")
    retention_days: int = Field(7, description="days of backups that must be kept")
    exclude: list[str] = Field(default_factory=list, description="names not watched (shell "
                                                                 "patterns, e.g. apps/scratch-*)")
    overrides: dict[str, dict[str, float]] = Field(default_factory=dict, description="per name: "
                                                   "{max_age_hours: .., retention_days: ..}")


class SqlCheck(Strict):
    """A read-only query a CNPG verification or drill runs on the restored database."""

    name: str = Field(description="shown in the verification's report")
    query: str = Field(description="run in a read-only transaction")
    database: str = Field("postgres", description="the database to connect to")
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
    longhorn_workers: int = Field(8, ge=1, le=64, description="blocks fetched and checked in "
                                  "parallel")
    postgres_bin_dir: str = Field("/usr/lib/postgresql/{major}/bin", description="PostgreSQL's "
                                  "server binaries for the backup's major version")
    postgres_user: str = Field("postgres", description="runs the throwaway PostgreSQL when "
                               "the worker is root")
    barman_dir: str | None = Field(None, description="where barman-cloud-* are (default: PATH)")
    etcd_bin_dir: str | None = Field(None, description="where etcd and etcdutl are (default: "
                                     "PATH)")
    recovery_timeout_seconds: int = Field(3600, gt=0, description="most time the throwaway "
                                          "PostgreSQL may take to recover")
    cnpg_checks: dict[str, list[SqlCheck]] = Field(default_factory=dict,
                                                   description="per CNPG server name")


class DrillCheck(Strict):
    """A command the drill's pod runs on the restored volume (mounted read-only), and what it
    must print."""

    name: str = Field(description="shown in the drill's report")
    command: list[str] = Field(min_length=1, description="argument list run in the drill pod "
                               "(no shell unless you name one); the volume is at mount_path")
    expect: str | None = Field(None, description="its output, stripped, must equal this "
                               "(default: exit status 0 is enough)")


class Drill(Strict):
    """How /dr drill restores a backup inside the cluster to prove the restore path."""

    image: str = Field("busybox:1.36", description="image of the pod that mounts the restored "
                       "volume and runs the checks (it needs sh, find, cat and wc)")
    mount_path: str = Field("/drill", pattern=r"^/[A-Za-z0-9._/-]*$",
                            description="where the pod mounts the restored volume, read-only")
    replicas: int = Field(1, ge=1, le=3, description="replicas of the restored volume (one is "
                          "enough for a drill and needs the least room)")
    timeout_minutes: float = Field(120, gt=0, description="most time one drill may take; a "
                                   "drill namespace older than this is deleted by the sweeper")
    pod_timeout_seconds: int = Field(600, gt=0, description="most time the check pod may take "
                                     "to be scheduled, mount the volume and finish")
    longhorn_checks: dict[str, list[DrillCheck]] = Field(
        default_factory=dict, description="per namespace/pvc; default: list the files and "
        "bytes of the volume (every file is read)")
    cnpg_checks: dict[str, list[SqlCheck]] = Field(
        default_factory=dict, description="per namespace/cluster: read-only SQL run in the "
        "recovered cluster's pod through the exec API; default: verify.cnpg_checks of its "
        "server name, else SELECT 1. A check with max_age_hours also gives the recovered point "
        "in time")
    cnpg_object_stores: dict[str, str] = Field(
        default_factory=dict, description="per namespace/cluster: a Barman Cloud ObjectStore "
        "in the cluster's namespace with read-only credentials; the drill recovers through "
        "it (copied into the drill namespace) instead of the cluster's own store")
    cnpg_ready_seconds: int = Field(1800, gt=0, description="most time the recovery Cluster "
                                    "may take to become Ready (restore and WAL replay)")


class Backups(Strict):
    """Where the backups are and the policy the watch holds them to."""

    longhorn_store: Store | None = Field(None, description="Longhorn's backup target")
    cnpg_store: Store | None = Field(None, description="CloudNativePG's barman object store")
    etcd_store: Store | None = Field(None, description="off-node K3s etcd snapshots (drbot "
                                                       "writes here: /dr etcd-sync)")
    longhorn: BackupPolicy = BackupPolicy()
    cnpg: BackupPolicy = BackupPolicy()
    etcd: BackupPolicy = BackupPolicy(max_age_hours=13.0, retention_days=2)
    check_interval_seconds: int = Field(300, description="seconds between two backup checks "
                                                         "(10 to 86400)")
    reminder_hours: float = Field(12.0, description="hours between reminders of an open alert")
    heartbeat_url: str | None = Field(None, description="pinged after every check "
                                                        "(healthchecks.io style)")
    verify_every: float = Field(0, ge=0, description="days: every object is verified "
                                "restorable at least this often (0: no rotation, no alert)")
    verify: Verify = Verify()
    drill_every: float = Field(0, ge=0, description="days: every Longhorn volume with a backup "
                               "and every CNPG cluster is drilled at least this often; an "
                               "object whose last passed drill is older alerts as drill "
                               "overdue (0: no rotation, no alert)")
    drill: Drill = Drill()
    alert_retention: bool = Field(False, description="also alert on retention gaps (else they "
                                                     "show in /dr backups and metrics only)")
    readiness_every: int = Field(7, ge=0, le=365, description="days: the DR readiness report "
                                 "(/dr readiness) is posted to the alert channels this often, on "
                                 "the first check of the UTC day (0: never)")


class Restores(Strict):
    """How many restores run at once and in which order (handlers/parallel_restore.py)."""

    per_node_limit: int | None = Field(
        None, ge=1, description="restores per node at once; default: Longhorn's setting "
        "concurrent-backup-restore-per-node-limit, read from the cluster")
    priorities: list[str] = Field(
        default_factory=list, description="namespace/pvc patterns restored first, in this order "
        "(e.g. databases/*); the rest go largest first")
    poll_seconds: float = Field(1.0, gt=0, le=30, description="how often the restores are read")


PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class AlertUrl(Strict):
    """An alert destination beyond chat, as an Apprise URL (ntfy://, gotify://, matrix://,
    mailto://...). Secrets never sit in the URL: a ``{name}`` placeholder is filled from the file
    ``secrets[name]`` when an alert is sent."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
                      description="what logs and the health check call it (never the URL)")
    url: str = Field(min_length=4, description="an Apprise URL; {placeholders} for secrets")
    secrets: dict[str, str] = Field(default_factory=dict,
                                    description="placeholder -> file holding its value")

    @model_validator(mode="after")
    def _placeholders(self) -> AlertUrl:
        used = set(PLACEHOLDER.findall(self.url))
        if used != set(self.secrets):
            raise ValueError(f"alerts.apprise {self.name}: the URL's placeholders "
                             f"({', '.join(sorted(used)) or 'none'}) must be exactly the secrets "
                             f"given ({', '.join(sorted(self.secrets)) or 'none'})")
        return self


class Alerts(BaseModel):
    """Where alerts go: a channel per chat frontend (`slack: C123`), and Apprise URLs."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, str] = Field(init=False)  # frontend name -> channel
    apprise: list[AlertUrl] = Field(default_factory=list,
                                    description="alert destinations beyond chat (Apprise URLs)")

    @property
    def channels(self) -> dict[str, str]:
        """The chat frontends' alert channels."""
        return dict(self.__pydantic_extra__ or {})


class Inventory(Strict):
    """The inventory file (DRBOT_INVENTORY)."""

    kubernetes: KubernetesTarget = KubernetesTarget()
    flux: Flux = Flux()
    proxmox: ProxmoxTarget | None = None
    hosts: list[str] = Field(default_factory=list, description="Proxmox hosts")
    nodes: dict[str, Node] = Field(default_factory=dict, description="the K3s nodes, by "
                                                                     "Kubernetes Node name")
    drbot_nodes: list[str] = Field(default_factory=list,
                                   description="K3s nodes running drbot's worker or Redis")
    iac: Iac | None = Field(None, description="infrastructure as code (rebuilds need it)")
    backups: Backups = Backups()
    restores: Restores = Restores()
    alerts: Alerts = Field(default_factory=lambda: Alerts(),
                           description="alert channel per frontend: {slack: C123, ...}; "
                                       "apprise: alert URLs beyond chat")

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

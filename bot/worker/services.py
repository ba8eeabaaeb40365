"""Adapters built lazily from the settings and the inventory (worker side only).

Secrets are read from the files the inventory names, when first needed, and handed to the redactor
so that no log line or thread reply can carry them.
"""

from __future__ import annotations

import contextlib
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import ConfigError
from bot.redact import REDACT

if TYPE_CHECKING:
    from adapters.ansible import AnsibleConfig
    from adapters.kubernetes.client import Kube
    from adapters.proxmox.vms import Proxmox
    from adapters.s3 import ObjectStore
    from adapters.terraform import TerraformConfig
    from bot.config.inventory import Inventory, Store
    from bot.config.settings import Settings
    from bot.watch.drilled import Drills
    from bot.watch.verified import Verifications


def secret_file(path: str, what: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path} ({exc.strerror}); mount the secret "
                          "there or fix the inventory") from None
    REDACT.add([value])
    return value


class Services:
    def __init__(self, settings: Settings, inventory: Inventory) -> None:
        self.settings = settings
        self.inventory = inventory

    def iac_secrets(self) -> None:
        """The redactor learns the secrets the IaC tools read from files (the vault password,
        the K3s token, Flux's bootstrap secret) before any tool runs, so a playbook or
        Terraform failure that echoes one is redacted in the thread and the log."""
        iac = self.inventory.iac
        if iac is None:
            return
        for path in (iac.vault_password_file, iac.k3s_token_file, iac.flux_secret_file):
            if path and os.path.isfile(path):
                with contextlib.suppress(ConfigError):
                    secret_file(path, "iac")

    @staticmethod
    def secret(path: str, what: str) -> str:
        """A secret from a file the inventory names (``what`` says which entry, for the error);
        the redactor learns it before it is returned."""
        return secret_file(path, what)

    def _need(self, section: str) -> None:
        if getattr(self.inventory, section) is None:
            raise ConfigError(f"the inventory has no `{section}` section; this command needs it")

    @cached_property
    def kube(self) -> Kube:
        from adapters.kubernetes.client import Kube

        target = self.inventory.kubernetes
        kubeconfig = self.settings.kubeconfig or target.kubeconfig
        return Kube(str(kubeconfig) if kubeconfig else None, endpoints=list(target.endpoints),
                    ca_file=target.ca_file)

    @cached_property
    def proxmox(self) -> Proxmox:
        from adapters.proxmox.client import ProxmoxConfig
        from adapters.proxmox.vms import Proxmox

        self._need("proxmox")
        pve = self.inventory.proxmox
        assert pve is not None
        return Proxmox(ProxmoxConfig(list(pve.endpoints), pve.user, pve.token_name,
                                     secret_file(pve.token_file, "proxmox.token_file"),
                                     ca_file=pve.ca_file))

    @cached_property
    def terraform(self) -> TerraformConfig:
        from adapters.terraform import TerraformConfig

        self._need("iac")
        assert self.inventory.iac is not None
        self.iac_secrets()
        tf = self.inventory.iac.terraform
        return TerraformConfig(tf.dir, binary=tf.binary, revision=tf.revision,
                               allow_local_state=tf.allow_local_state,
                               plugin_cache=tf.plugin_cache, env={"PATH": os.environ["PATH"]},
                               timeout=tf.timeout)

    @cached_property
    def ansible(self) -> AnsibleConfig:
        from adapters.ansible import AnsibleConfig

        self._need("iac")
        iac = self.inventory.iac
        assert iac is not None
        self.iac_secrets()
        return AnsibleConfig(iac.ansible.dir, iac.ansible.inventory,
                             private_key_file=iac.ssh_key_file,
                             vault_password_file=iac.vault_password_file,
                             extravars=dict(iac.ansible.extravars), timeout=iac.ansible.timeout)

    @cached_property
    def verifications(self) -> Verifications:
        """Where /dr verify keeps its results (bot.watch.verified), on the worker's Redis."""
        from bot.runtime import connect
        from bot.watch.verified import Verifications

        return Verifications(connect(self.settings, patient=True))

    @cached_property
    def drills(self) -> Drills:
        """Where /dr drill keeps its results (bot.watch.drilled), on the worker's Redis."""
        from bot.runtime import connect
        from bot.watch.drilled import Drills

        return Drills(connect(self.settings, patient=True))

    def active_jobs(self) -> set[str]:
        """Ids of the jobs that are not over (planning, queued, awaiting approval, running): the
        drill sweeper leaves their namespaces alone."""
        from bot.records.jobs import JobStore
        from bot.records.signing import Signer
        from bot.runtime import connect

        store = JobStore(connect(self.settings, patient=True), Signer(self.settings.key()))
        active = set()
        for job_id in store.active():
            try:
                job = store.get(job_id)
            except Exception:  # noqa: BLE001,S112  (a record we cannot read is not proof of life)
                continue
            if not job.terminal:
                active.add(job.id)
        return active

    def store(self, kind: str) -> ObjectStore:
        """The object store holding `longhorn`, `cnpg` or `etcd` backups."""
        from adapters.s3 import ObjectStore, StoreConfig

        entry: Store | None = getattr(self.inventory.backups, f"{kind}_store")
        if entry is None:
            raise ConfigError(f"the inventory has no backups.{kind}_store; add where the {kind} "
                              "backups are kept")
        from bot.config import credentials

        where = f"backups.{kind}_store.credentials_file"
        creds = credentials.parse(secret_file(entry.credentials_file, where), where,
                                  entry.profile) if entry.credentials_file \
            else credentials.from_environment()
        REDACT.add([v for v in (creds.access_key, creds.secret_key) if v])
        return ObjectStore(StoreConfig(entry.url, endpoint_url=entry.endpoint_url,
                                       region=entry.region, access_key=creds.access_key,
                                       secret_key=creds.secret_key, ca_file=entry.ca_file))

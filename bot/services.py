"""Adapters built lazily from the settings and the inventory (worker side only)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from bot.config import Settings
    from bot.inventory import Inventory


class Services:
    def __init__(self, settings: Settings, inventory: Inventory) -> None:
        self.settings = settings
        self.inventory = inventory

    @cached_property
    def kube(self) -> Kube:
        from adapters.kubernetes.client import Kube

        target = self.inventory.kubernetes
        kubeconfig = self.settings.kubeconfig or target.kubeconfig
        return Kube(str(kubeconfig) if kubeconfig else None, endpoints=list(target.endpoints),
                    ca_file=target.ca_file)

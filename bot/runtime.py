"""The pieces every drbot process shares, built once from the settings."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from bot.config.inventory import Inventory, load_inventory
from bot.config.policy import Policy
from bot.config.settings import Settings
from bot.records.audit import Audit
from bot.records.events import Events
from bot.records.jobs import JobStore
from bot.records.locks import Locks
from bot.records.rates import RateLimits, Rates
from bot.records.signing import Signer
from bot.redact import REDACT

T = TypeVar("T")


def connect(settings: Settings, *, patient: bool) -> redis.Redis:
    """A Redis client. The bot's request path is impatient (an ack must come within 3 s, so it
    fails fast with "queue unavailable"); the worker and relay are patient and ride out restarts."""
    settings.require("redis_url")
    assert settings.redis_url is not None
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.1), 8 if patient else 1)
    return redis.Redis.from_url(
        settings.redis_url, password=password, retry=retry,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_connect_timeout=2.0 if patient else 0.5, socket_timeout=10.0 if patient else 1.5,
        health_check_interval=30)


def freeze_loaded() -> None:
    """Once a long-lived process (the bot, the worker) has loaded what it keeps: collect, then put
    all of it out of the cyclic collector's reach (gc.freeze). A full collection then walks only
    what came since: the bot's event loop, which acks, stalls far less (bench/slack_ack.py's p99
    at 20 concurrent missed its target in one run of three without it), and a worker's horses no
    longer copy, by collecting, every page they share with it."""
    gc.collect()
    gc.freeze()


@dataclass
class Runtime:
    settings: Settings
    client: redis.Redis
    _files: dict[str, tuple[Any, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, patient: bool) -> Runtime:
        REDACT.add(s.get_secret_value() for s in (settings.signing_key, settings.slack_bot_token,
                                                   settings.slack_app_token, settings.discord_token,
                                                   settings.slack_signing_secret,
                                                   settings.redis_password) if s)
        REDACT.add([urlparse(settings.redis_url or "").password or ""])  # a password in REDIS_URL
        return cls(settings, connect(settings, patient=patient))

    @cached_property
    def signer(self) -> Signer:
        return Signer(self.settings.key())

    @cached_property
    def store(self) -> JobStore:
        return JobStore(self.client, self.signer)

    @cached_property
    def events(self) -> Events:
        return Events(self.client, self.signer)

    @cached_property
    def audit(self) -> Audit:
        return Audit(self.client, self.settings.audit_keep)

    @cached_property
    def rates(self) -> Rates:
        return Rates(self.client, RateLimits(self.settings.rate_person_per_minute,
                                         self.settings.rate_global_per_minute))

    @cached_property
    def locks(self) -> Locks:
        return Locks(self.client)

    @property
    def policy(self) -> Policy:
        """The policy file, read again whenever it changes on disk (a long-lived worker must not
        keep approving by an old list)."""
        self.settings.require("policy")
        assert self.settings.policy is not None
        return self._fresh("policy", self.settings.policy, Policy.load)

    @property
    def inventory(self) -> Inventory:
        if self.settings.inventory is None:
            return self._empty_inventory
        return self._fresh("inventory", self.settings.inventory, load_inventory)

    @cached_property
    def _empty_inventory(self) -> Inventory:
        """Built once: a job reads the inventory several times, and building one is not free."""
        return load_inventory(None)

    def _fresh(self, name: str, path: Path, load: Callable[[Path], T]) -> T:
        stat = path.stat() if path.exists() else None
        stamp = (stat.st_mtime_ns, stat.st_size) if stat else None
        cached = self._files.get(name)
        if cached is None or cached[0] != stamp:
            cached = (stamp, load(path))
            self._files[name] = cached
        return cached[1]

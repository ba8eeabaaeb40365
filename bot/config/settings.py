"""Settings from the environment (and secrets from mounted files).

Every secret may be given as ``DRBOT_<NAME>`` or, preferably, as ``DRBOT_<NAME>_FILE`` naming a file
that holds it (a mounted Kubernetes Secret, a systemd credential). Secrets are ``SecretStr``: they never
appear in a repr, a log line or an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SECRETS = ("signing_key", "slack_bot_token", "slack_app_token", "slack_signing_secret",
           "discord_token", "redis_password")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRBOT_", extra="ignore")

    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "DRBOT_REDIS_URL"),
                                  description="Redis for jobs, events and locks (required for bot "
                                              "and worker; the console starts a private one)")
    redis_password: SecretStr | None = Field(None, description="Redis password if not in the URL")
    redis_allow_no_password: bool = Field(False, description="let bot, worker and scheduler use a "
                                                             "Redis without a password (a private "
                                                             "loopback Redis only)")
    signing_key: SecretStr | None = Field(None, description="HMAC key signing job and approval "
                                                            "records; the same in bot and worker")
    policy: Path | None = Field(None, description="policy file (people, roles, command rules)")
    inventory: Path | None = Field(None, description="inventory file (nodes, hosts, iac, backups)")
    kubeconfig: Path | None = Field(None, description="worker only: kubeconfig for the cluster")
    queue: str = Field("drbot", description="rq queue name")
    throttle_seconds: float = Field(2.0, ge=0, description="least time between two status edits")
    heartbeat_seconds: float = Field(5.0, gt=0, description="running job heartbeat interval")
    lost_after_seconds: float = Field(20.0, gt=0, description="a running job whose heartbeat is "
                                                             "older than this is reported lost")
    cancel_grace_seconds: float = Field(10.0, ge=0, description="cancel: SIGINT, then stop after")
    actionable_seconds: int = Field(900, ge=10, description="a job record asking for work "
                                    "(planning, queued) is started only this long after drbot "
                                    "signed it; later, the bot marks it expired")
    state_dir: Path | None = Field(None, description="worker only: its own folder that survives "
                                   "restarts, where it keeps the versions of job records it has "
                                   "seen (so a record written back into Redis never runs again "
                                   "after a restart); default $XDG_STATE_HOME/drbot/worker, else "
                                   "~/.local/state/drbot/worker")
    audit_keep: int = Field(100_000, ge=1000, description="audit entries kept in Redis (the "
                                                          "newest; all go to the log as well)")
    rate_person_per_minute: int = Field(20, ge=1, description="submissions one person may make "
                                                              "in a minute")
    rate_global_per_minute: int = Field(100, ge=1, description="submissions everyone together may "
                                                              "make in a minute")
    plugins: list[str] = Field(default_factory=list, description="extra modules of handlers to "
                                                                  "load (your own runbooks)")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_json: bool = Field(True, description="JSON log lines (false: plain text)")
    http_port: int | None = Field(None, description="port for /healthz, /readyz and /metrics")
    http_host: str = Field("127.0.0.1", description="address the HTTP endpoints listen on "
                                                    "(0.0.0.0 in a container)")
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = Field(None, description="xapp- token: Socket Mode")
    slack_signing_secret: SecretStr | None = Field(None, description="HTTP mode signature key")
    slack_http_host: str | None = Field(None, description="HTTP mode: address to listen on "
                                                          "(default: all interfaces)")
    slack_http_port: int = Field(3000, description="HTTP mode: port for Slack's requests")
    slack_api_url: str | None = Field(None, description="Slack Web API base URL (default "
                                                         "https://slack.com/api/; GovSlack: "
                                                         "https://slack-gov.com/api/)")
    discord_token: SecretStr | None = None
    discord_guild: int | None = Field(None, description="guild for command sync (else global)")

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"use {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]}")
        return value.upper()

    @classmethod
    def load(cls, **values: Any) -> Settings:
        """The settings from the environment; a bad value is a one-line ConfigError naming the
        variable, what was given (never for a secret) and what to write instead."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(explain(exc)) from None

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        data = dict(data or {})
        for name in SECRETS:
            path = os.environ.get(f"DRBOT_{name.upper()}_FILE")
            if path and not data.get(name):
                try:
                    data[name] = Path(path).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ConfigError(f"DRBOT_{name.upper()}_FILE={path}: cannot read it "
                                      f"({exc.strerror}); mount the secret there") from None
        return data

    def require(self, *names: str) -> None:
        """Refuse to start without the settings a process cannot work without."""
        missing = [n for n in names if getattr(self, n) in (None, "")]
        if missing:
            env = ", ".join("REDIS_URL" if n == "redis_url" else f"DRBOT_{n.upper()}"
                            for n in missing)
            raise ConfigError(f"missing setting(s): {env}; set them in the environment "
                              "(secrets may be given as *_FILE paths)")

    def require_redis_password(self) -> None:
        """Anyone who can write to Redis can queue work for the worker: a shared Redis needs a
        password. Only a private loopback Redis (the lab, a single-user box) may go without."""
        from urllib.parse import urlparse

        if self.redis_allow_no_password or self.redis_password or not self.redis_url:
            return
        if not urlparse(self.redis_url).password:
            raise ConfigError("REDIS_URL has no password: put one in the URL "
                              "(redis://:PASSWORD@host:6379/0) or set DRBOT_REDIS_PASSWORD_FILE; "
                              "only a private loopback Redis may go without "
                              "(DRBOT_REDIS_ALLOW_NO_PASSWORD=true)")

    def key(self) -> bytes:
        self.require("signing_key")
        assert self.signing_key is not None
        key = self.signing_key.get_secret_value().encode()
        if len(key) < 32:
            raise ConfigError("DRBOT_SIGNING_KEY is shorter than 32 characters; generate one with "
                              "`python -c 'import secrets; print(secrets.token_hex(32))'`")
        return key


HINTS = {"int_parsing": "write a whole number", "float_parsing": "write a number",
         "bool_parsing": "write true or false", "greater_than_equal": "",
         "greater_than": "", "json_invalid": 'write JSON, e.g. ["my_runbooks"]',
         "list_type": 'write a JSON list, e.g. ["my_runbooks"]'}


def env_name(field: str) -> str:
    return "REDIS_URL" if field == "redis_url" else f"DRBOT_{field.upper()}"


def explain(exc: ValidationError) -> str:
    """All problems of one ValidationError on one line."""
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        shown = "" if field in SECRETS else f"={err.get('input')!s}"
        message = str(err["msg"]).removeprefix("Value error, ")
        hint = HINTS.get(str(err["type"]), "")
        parts.append(f"{env_name(field)}{shown}: {message}" + (f"; {hint}" if hint else ""))
    return "bad setting(s): " + " | ".join(parts)

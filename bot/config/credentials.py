"""S3 credentials in the formats people already have.

A store's ``credentials_file`` may be drbot's own two lines (``access_key=...``,
``secret_key=...``) or an AWS shared-credentials file (INI sections with
``aws_access_key_id``/``aws_secret_access_key``, the format of ``~/.aws/credentials``; the
section is the store's ``profile``, else ``default``). Without a file the AWS variables
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` are used when both are set, and otherwise
boto3's own chain (``AWS_SHARED_CREDENTIALS_FILE``, ``AWS_PROFILE``, instance roles). Every
secret found is handed to the redactor.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field

from bot.errors import ConfigError


@dataclass(frozen=True)
class S3Credentials:
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)


def parse(text: str, where: str, profile: str | None = None) -> S3Credentials:
    """Either format, told apart by the first non-blank line: ``[section]`` means INI."""
    lines = [line.strip() for line in text.splitlines() if line.strip()
             and not line.strip().startswith(("#", ";"))]
    if lines and lines[0].startswith("["):
        return _aws(text, where, profile or "default")
    if profile:
        raise ConfigError(f"{where}: profile {profile!r} is set but the file is not in the AWS "
                          "shared-credentials format ([profile] sections)")
    pairs = {}
    for line in lines:
        name, sep, value = line.partition("=")
        if sep:
            pairs[name.strip()] = value.strip()
    if not pairs.get("access_key") or not pairs.get("secret_key"):
        raise ConfigError(f"{where}: needs access_key=... and secret_key=... lines (or the AWS "
                          "shared-credentials format)")
    return S3Credentials(pairs["access_key"], pairs["secret_key"])


def _aws(text: str, where: str, profile: str) -> S3Credentials:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ConfigError(f"{where}: not a valid AWS credentials file ({exc.message})") from None
    if not parser.has_section(profile):
        known = ", ".join(parser.sections()) or "none"
        raise ConfigError(f"{where}: no [{profile}] section (sections: {known}); set the store's "
                          "profile")
    section = parser[profile]
    access, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
    if not access or not secret:
        raise ConfigError(f"{where}: [{profile}] needs aws_access_key_id and "
                          "aws_secret_access_key")
    return S3Credentials(access.strip(), secret.strip())


def from_environment() -> S3Credentials:
    """AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when both are set; else nothing (boto3 decides)."""
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    return S3Credentials(access, secret) if access and secret else S3Credentials()

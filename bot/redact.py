"""Remove secrets from any text before it is posted or logged.

The redactor knows every configured secret value (tokens, keys, the contents of secret files) and a
few well-known token shapes, and replaces them wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SHAPES = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}"
    # K3s secure token K10<ca hash>::<user>:<password> (docs.k3s.io/cli/token)
    r"|K10[0-9a-f]{16,}::[A-Za-z]+:[A-Za-z0-9]+"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|glpat-[A-Za-z0-9_-]{20,}"  # GitHub, GitLab tokens
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # a JWT (service account)
    r"|(?i:bearer\s+)[A-Za-z0-9._~+/=-]{16,}"
    r"|(?i:rediss?://[^:/@\s]*:)[^@\s]+(?=@)"  # a password inside a Redis URL
    r"|PVEAPIToken=[^\s\"']+|AKIA[0-9A-Z]{16}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|(?i:(?:password|passwd|secret|token)\s*[=:]\s*)[^\s,;\"']+)")
MASK = "[redacted]"


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        found = {s.strip() for s in secrets if s and len(s.strip()) >= 6}
        self._secrets = sorted(set(self._secrets) | found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return SHAPES.sub(MASK, text)


REDACT = Redactor()
"""The process-wide redactor; settings and inventory loading add their secrets to it."""

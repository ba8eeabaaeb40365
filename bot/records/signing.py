"""HMAC signatures over records kept in Redis.

The key lives in the bot's and the worker's configuration, never in Redis, so a record written by
anyone who can only reach Redis carries no valid signature and is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from bot.errors import RecordForged


def canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest(data: Any) -> str:
    """A plain content digest (for plans): not secret, only stable."""
    return hashlib.sha256(canonical(data)).hexdigest()[:16]


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, data: Any) -> str:
        return hmac.new(self._key, canonical(data), hashlib.sha256).hexdigest()

    def seal(self, data: dict[str, Any]) -> bytes:
        return canonical({"record": data, "sig": self.sign(data)})

    def open(self, raw: bytes | str, what: str) -> dict[str, Any]:
        """The record inside a sealed blob, or RecordForged if it was not signed with our key."""
        try:
            blob = json.loads(raw)
            record, sig = blob["record"], blob["sig"]
        except (ValueError, KeyError, TypeError):
            raise RecordForged(f"{what}: not a sealed record") from None
        if not isinstance(sig, str) or not hmac.compare_digest(sig, self.sign(record)):
            raise RecordForged(f"{what}: signature does not match")
        return record

"""HMAC signatures over records kept in Redis.

The key lives in the bot's and the worker's configuration, never in Redis, so a record written by
anyone who can only reach Redis carries no valid signature and is refused.

A signature alone would let a Redis writer copy a signed record under another key or write an old
one back. So what is signed is an envelope: the record, the Redis key it belongs under (a record
moved to another key is refused) and when it was signed (so a reader can bound how long a record
may be acted on). A record that must never be rolled back carries its own growing version inside.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from bot.errors import RecordForged


def canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest(data: Any) -> str:
    """A plain content digest (for plans): not secret, only stable."""
    return hashlib.sha256(canonical(data)).hexdigest()[:16]


@dataclass(frozen=True)
class Sealed:
    """An opened envelope: the record and when drbot signed it (seconds since the epoch)."""

    record: dict[str, Any]
    signed: float


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, data: Any) -> str:
        return hmac.new(self._key, canonical(data), hashlib.sha256).hexdigest()

    def verify(self, data: Any, sig: object) -> bool:
        return isinstance(sig, str) and hmac.compare_digest(sig, self.sign(data))

    def seal(self, data: dict[str, Any], bound: str, at: float | None = None) -> bytes:
        """``data`` signed for the Redis key ``bound`` (or another name of where it is valid)."""
        envelope = {"bound": bound, "record": data,
                    "signed": round(time.time() if at is None else at, 3)}
        return canonical({**envelope, "sig": self.sign(envelope)})

    def opened(self, raw: bytes | str | None, what: str, bound: str) -> Sealed:
        """The envelope's content, or RecordForged if it was not signed with our key for
        ``bound``. Any malformed value is refused the same way, never crashed on."""
        try:
            blob = json.loads(raw)  # type: ignore[arg-type]
            envelope = {name: blob[name] for name in ("bound", "record", "signed")}
            sig = blob["sig"]
        except (ValueError, KeyError, TypeError):
            raise RecordForged(f"{what}: not a sealed record") from None
        if not isinstance(sig, str) or not hmac.compare_digest(sig, self.sign(envelope)):
            raise RecordForged(f"{what}: signature does not match")
        if envelope["bound"] != bound:
            raise RecordForged(f"{what}: signed for {envelope['bound']!r}, found under {bound!r} "
                               "(a record copied from elsewhere)")
        record, signed = envelope["record"], envelope["signed"]
        if not isinstance(record, dict) or not isinstance(signed, int | float):
            raise RecordForged(f"{what}: not a sealed record")
        return Sealed(record, float(signed))

    def open(self, raw: bytes | str | None, what: str, bound: str) -> dict[str, Any]:
        return self.opened(raw, what, bound).record

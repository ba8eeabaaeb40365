"""Per-object results (verifications, drills) kept in one Redis hash by ``kind:name``.

One reader for both: an entry that is not the JSON of a record is skipped, never a crash, since
Redis is not trusted (DESIGN "Security") and a bad entry must not hide the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Generic, TypeVar

import redis

R = TypeVar("R")


class ResultHash(Generic[R]):
    def __init__(self, key: str, from_dict: Callable[[dict[str, Any]], R]) -> None:
        self.key = key
        self.from_dict = from_dict

    def save(self, client: redis.Redis, name: str, record: Any) -> None:
        client.hset(self.key, name, json.dumps(asdict(record)))

    def one(self, client: redis.Redis, name: str) -> R | None:
        raw = client.hget(self.key, name)
        return self._parse(raw) if raw else None

    def all(self, client: redis.Redis) -> dict[str, R]:
        out = {}
        for name, raw in client.hgetall(self.key).items():
            record = self._parse(raw)
            if record is not None:
                out[name.decode() if isinstance(name, bytes) else str(name)] = record
        return out

    def _parse(self, raw: Any) -> R | None:
        try:
            return self.from_dict(json.loads(raw))
        except (ValueError, TypeError, AttributeError):
            return None

"""Lease locks in Redis: shared or exclusive, renewed by the running job, expiring if it dies.

One Lua script takes every key a runbook declares at once or none of them, and names the holder of
the first key that is busy. Release is compare-and-delete of this job's own lease.

A third mode, ``free``, takes nothing: the key must have no other holder at that moment. A drill
declares ``free("cluster")`` (no recovery may be running) and the rebuilds ``free("drill")`` (no
drill may be running): checked and taken in the same script run, so of two such jobs started at
once the second always sees the first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import redis
from redis.client import Pipeline

PREFIX = "drbot:lock:"

# KEYS: lock keys. ARGV: job id, ttl ms, "probe" or "take", then one mode per key ("s", "x" or
# "f": free of other holders, nothing taken).
# A lock is a hash: field "mode" and one field per holder job id -> expiry (ms since epoch).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local job, ttl = ARGV[1], tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local fields = redis.call('HGETALL', key)
  local live = 0
  for j = 1, #fields, 2 do
    local f, v = fields[j], fields[j + 1]
    if f ~= 'mode' then
      if tonumber(v) <= now then redis.call('HDEL', key, f)
      elseif f ~= job then
        live = live + 1
        if ARGV[3 + i] ~= 's' or redis.call('HGET', key, 'mode') ~= 's' then
          return {key, f}
        end
      end
    end
  end
  if live == 0 then redis.call('DEL', key) end
end
if ARGV[3] == 'probe' then return false end
for i, key in ipairs(KEYS) do
  if ARGV[3 + i] ~= 'f' then
    redis.call('HSET', key, 'mode', ARGV[3 + i], job, now + ttl)
    redis.call('PEXPIRE', key, ttl * 4)
  end
end
return false
"""

# Renew only leases this job still holds; returns how many it renewed.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('HEXISTS', key, ARGV[1]) == 1 then
    redis.call('HSET', key, ARGV[1], now + tonumber(ARGV[2]))
    redis.call('PEXPIRE', key, tonumber(ARGV[2]) * 4)
    n = n + 1
  end
end
return n
"""

_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('HDEL', key, ARGV[1]) == 1 and redis.call('HLEN', key) <= 1 then
    redis.call('DEL', key)
  end
end
return 1
"""


# Remove only the named holders (the ones found gone when an admin asked), never a newer one.
_EVICT = """
local n = 0
for i = 1, #ARGV do n = n + redis.call('HDEL', KEYS[1], ARGV[i]) end
if redis.call('HLEN', KEYS[1]) <= 1 then redis.call('DEL', KEYS[1]) end
return n
"""


class LockMode(StrEnum):
    """How a job holds a key: many shared holders at once, or one exclusive holder; or, FREE,
    not at all: the key must have no other holder when the job starts (nothing is taken)."""

    SHARED = "shared"
    EXCLUSIVE = "exclusive"
    FREE = "free"

    @property
    def wire(self) -> str:
        """The one-letter form the Lua scripts store in the lock hash's ``mode`` field."""
        return _WIRE[self]

    @classmethod
    def from_wire(cls, letter: str) -> LockMode:
        """The mode a stored hash names; anything but "s" reads as exclusive, the safe side."""
        return cls.SHARED if letter == "s" else cls.EXCLUSIVE


_WIRE = {LockMode.SHARED: "s", LockMode.EXCLUSIVE: "x", LockMode.FREE: "f"}


@dataclass(frozen=True)
class LockKey:
    name: str
    mode: LockMode = LockMode.EXCLUSIVE


def shared(name: str) -> LockKey:
    return LockKey(name, LockMode.SHARED)


def exclusive(name: str) -> LockKey:
    return LockKey(name, LockMode.EXCLUSIVE)


def free(name: str) -> LockKey:
    """Not a lock taken: the key must be held by no other job when the job starts."""
    return LockKey(name, LockMode.FREE)


@dataclass(frozen=True)
class Busy:
    key: str
    holder: str


@dataclass(frozen=True)
class Lease:
    """One holder's lease on one key, as stored: who (a job id), how, and until when."""

    key: str
    mode: LockMode
    holder: str
    expires: float  # seconds since the epoch

    @property
    def remaining(self) -> float:
        return self.expires - time.time()


def held(client: redis.Redis) -> list[Lease]:
    """Every live lease, by key then holder. A lease past its expiry is not listed: the next
    acquire drops it anyway, and showing it would invite freeing what is already free."""
    now = time.time()
    found = []
    for raw_key in client.scan_iter(match=PREFIX + "*", count=200):
        fields = {k.decode(): v.decode() for k, v in client.hgetall(raw_key).items()}
        mode = LockMode.from_wire(fields.pop("mode", "x"))
        key = raw_key.decode().removeprefix(PREFIX)
        found += [Lease(key, mode, holder, int(ms) / 1000) for holder, ms in fields.items()
                  if int(ms) / 1000 > now]
    return sorted(found, key=lambda lease: (lease.key, lease.holder))


class Locks:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._evict = client.register_script(_EVICT)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @staticmethod
    def _keys(keys: list[LockKey]) -> list[str]:
        return [PREFIX + k.name for k in keys]

    def acquire(self, job_id: str, keys: list[LockKey], ttl: float, *, probe: bool = False
                ) -> Busy | None:
        """Take every key or none; return the first busy key and its holder's job id.

        With probe=True nothing is taken: it only tells whether the keys would be granted now
        (used to refuse at submit time, before anything is queued).
        """
        if not keys:
            return None
        modes = [LockMode(k.mode).wire for k in keys]  # a mode that is not a LockMode raises
        busy = self._acquire(keys=self._keys(keys),
                             args=[job_id, int(ttl * 1000), "probe" if probe else "take", *modes])
        if not busy:
            return None
        key, holder = (b.decode() if isinstance(b, bytes) else b for b in busy)
        return Busy(key.removeprefix(PREFIX), holder)

    def renew(self, job_id: str, keys: list[LockKey], ttl: float) -> int:
        return int(self._renew(keys=self._keys(keys), args=[job_id, int(ttl * 1000)]) or 0)

    def release(self, job_id: str, keys: list[LockKey], client: Pipeline | None = None) -> None:
        """Free ``keys`` from ``job_id``; on ``client`` when given (a transaction's pipeline)."""
        if keys:
            self._release(keys=self._keys(keys), args=[job_id], client=client)

    def holders(self, key: str) -> dict[str, str]:
        raw = self.client.hgetall(PREFIX + key)
        return {k.decode(): v.decode() for k, v in raw.items() if k != b"mode"}

    def evict(self, key: str, holders: list[str]) -> int:
        """Free ``key`` from these holders only (an admin's /dr unlock); returns how many left."""
        if not holders:
            return 0
        return int(self._evict(keys=[PREFIX + key], args=holders) or 0)

"""Lease locks: shared and exclusive keys, all or nothing, holders named, leases expiring."""

from __future__ import annotations

import time

import pytest
import redis

from bot.records.locks import PREFIX, Busy, LockKey, LockMode, Locks, exclusive, held, shared
from tests.bot.harness import Harness, wait_until


def test_shared_keys_coexist_and_exclusive_keys_do_not(redis_url: str) -> None:
    locks = Locks(redis.Redis.from_url(redis_url))
    assert locks.acquire("j1", [shared("cluster")], ttl=30) is None
    assert locks.acquire("j2", [shared("cluster")], ttl=30) is None
    busy = locks.acquire("j3", [exclusive("cluster")], ttl=30)
    assert busy is not None and busy.key == "cluster" and busy.holder in ("j1", "j2")
    locks.release("j1", [shared("cluster")])
    locks.release("j2", [shared("cluster")])
    assert locks.acquire("j3", [exclusive("cluster")], ttl=30) is None
    assert locks.acquire("j4", [shared("cluster")], ttl=30).holder == "j3"


def test_a_mode_that_is_not_a_lock_mode_is_refused_before_redis(redis_url: str) -> None:
    locks = Locks(redis.Redis.from_url(redis_url))
    with pytest.raises(ValueError, match="'sharde' is not a valid LockMode"):
        locks.acquire("j1", [LockKey("cluster", "sharde")], ttl=30)  # type: ignore[arg-type]
    assert locks.holders("cluster") == {}


def test_a_stored_mode_other_than_shared_counts_as_exclusive(redis_url: str) -> None:
    """A lock hash whose mode field is garbage (a Redis writer, a bug) blocks every newcomer and
    lists as exclusive: the safe reading, never a silent share."""
    client = redis.Redis.from_url(redis_url)
    client.hset(PREFIX + "cluster", mapping={"mode": "?", "j1": int(time.time() * 1000) + 30_000})
    busy = Locks(client).acquire("j2", [shared("cluster")], ttl=30)
    assert busy is not None and busy.holder == "j1"
    assert [(lease.holder, lease.mode) for lease in held(client)] == [("j1", LockMode.EXCLUSIVE)]


def test_all_or_nothing(redis_url: str) -> None:
    locks = Locks(redis.Redis.from_url(redis_url))
    locks.acquire("j1", [exclusive("node:b")], ttl=30)
    busy = locks.acquire("j2", [shared("cluster"), exclusive("node:b")], ttl=30)
    assert busy is not None and busy.key == "node:b"
    assert locks.holders("cluster") == {}  # j2 took nothing
    assert locks.acquire("j3", [exclusive("cluster")], ttl=30) is None


def test_leases_expire_and_release_is_compare_and_delete(redis_url: str) -> None:
    locks = Locks(redis.Redis.from_url(redis_url))
    # 2 s: long enough that a loaded machine still asks again before the lease runs out
    locks.acquire("dead", [exclusive("node:a")], ttl=2.0)
    locks.release("someone-else", [exclusive("node:a")])
    assert locks.acquire("j2", [exclusive("node:a")], ttl=30).holder == "dead"
    wait_until(lambda: locks.acquire("j2", [exclusive("node:a")], ttl=30) is None, timeout=60,
               what="the dead holder's lease to run out")
    assert set(locks.holders("node:a")) == {"j2"}


def test_renewal_keeps_a_lease(redis_url: str) -> None:
    locks = Locks(redis.Redis.from_url(redis_url))
    locks.acquire("j1", [exclusive("x")], ttl=0.3)
    assert locks.renew("j1", [exclusive("x")], ttl=30) == 1
    assert locks.renew("j2", [exclusive("x")], ttl=30) == 0
    expiry_ms = int(locks.holders("x")["j1"])
    assert expiry_ms / 1000 > time.time() + 25


def test_busy_target_is_refused_at_once_naming_the_holder(drbot: Harness) -> None:
    drbot.redis.set("drbot:plugin:a:hold", 1)
    first = drbot.say("/dr exercise a").job_id
    wait_until(lambda: drbot.redis.exists("drbot:plugin:a:in-two"), what="step two")
    reply = drbot.say("/dr exercise a", who="bob")
    assert not reply.ok and reply.job_id is None
    assert f"busy: drill:a is held by job {first} (/dr exercise, alice, running)" in reply.text
    other = drbot.say("/dr exercise b", who="bob")  # another target shares the cluster key
    drbot.start_worker()
    assert drbot.wait_status(other.job_id, "succeeded")
    drbot.redis.set("drbot:plugin:a:go", 1)
    drbot.wait_status(first, "succeeded")
    assert drbot.rt.locks.holders("drill:a") == {}


def test_drills_and_recoveries_exclude_each_other_through_free_keys(redis_url: str) -> None:
    """A drill needs `cluster` free and shares `drill`; a rebuild shares `cluster` and needs
    `drill` free (handlers/drill.py, handlers/rebuild_node.py): whichever comes second is
    refused naming the first, and a free key is never taken."""
    from bot.config.inventory import Inventory
    from handlers.drill import locks as drill_locks
    from handlers.rebuild_node import locks as rebuild_locks

    inventory = Inventory()
    locks = Locks(redis.Redis.from_url(redis_url))
    drill = drill_locks({"kind": "longhorn", "target": "apps/web-data"}, inventory)
    other = drill_locks({"kind": "longhorn", "target": "apps/gitea-data"}, inventory)
    rebuild = rebuild_locks({"node": "k3s-agent-1"}, inventory)
    assert locks.acquire("d1", drill, ttl=30) is None
    assert locks.acquire("d2", other, ttl=30) is None  # two drills at once
    assert locks.holders("cluster") == {}  # a free key is checked, not taken
    busy = locks.acquire("r1", rebuild, ttl=30)
    assert busy is not None and busy.key == "drill" and busy.holder in ("d1", "d2")
    assert locks.holders("node:k3s-agent-1") == {}  # all or nothing
    assert locks.acquire("d1", drill, ttl=30) is None  # its own lease does not block itself
    locks.release("d1", drill)
    locks.release("d2", other)
    assert locks.acquire("r1", rebuild, ttl=30) is None
    busy = locks.acquire("d3", drill, ttl=30)
    assert busy == Busy("cluster", "r1")
    assert locks.acquire("d3", drill, ttl=30, probe=True) == Busy("cluster", "r1")  # at submit
    assert locks.holders("drill") == {}


def test_held_lists_every_live_lease_by_key_then_holder_as_stored(redis_url: str) -> None:
    """Two keys, holders written out of order, an expired lease, a hash without a mode field
    and a key that is not a lock: only the live leases of lock keys, sorted, their expiry the
    stored milliseconds in seconds."""
    client = redis.Redis.from_url(redis_url)
    locks = Locks(client)
    assert locks.acquire("j2", [shared("cluster")], ttl=30) is None
    assert locks.acquire("j1", [shared("cluster")], ttl=30) is None
    assert locks.acquire("j3", [exclusive("node:a")], ttl=30) is None
    now_ms = int(time.time() * 1000)
    client.hset(PREFIX + "node:a", "dead", now_ms - 1000)  # ran out; acquire has not dropped it
    client.hset(PREFIX + "nomode", "j4", now_ms + 30_000)  # no mode field: the safe reading
    client.set("drbot:job:j1", "not a lock")
    leases = held(client)
    assert [(lease.key, lease.holder, lease.mode) for lease in leases] == [
        ("cluster", "j1", LockMode.SHARED), ("cluster", "j2", LockMode.SHARED),
        ("node:a", "j3", LockMode.EXCLUSIVE), ("nomode", "j4", LockMode.EXCLUSIVE)]
    assert leases[2].expires == int(locks.holders("node:a")["j3"]) / 1000
    assert 0 < leases[2].remaining <= 30


def _redis_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def test_a_lease_lasts_exactly_its_ttl_from_redis_own_clock(redis_url: str) -> None:
    """The scripts stamp expiries with Redis's TIME, so the stored expiry lies between the
    server's clock read just before and just after, plus the ttl: no slack for a wrong unit."""
    client = redis.Redis.from_url(redis_url)
    locks = Locks(client)
    before = _redis_ms(client)
    locks.acquire("j1", [exclusive("x")], ttl=1000)
    after = _redis_ms(client)
    assert before + 1_000_000 <= int(locks.holders("x")["j1"]) <= after + 1_000_000
    before = _redis_ms(client)
    assert locks.renew("j1", [exclusive("x")], ttl=2000) == 1
    after = _redis_ms(client)
    assert before + 2_000_000 <= int(locks.holders("x")["j1"]) <= after + 2_000_000


def test_a_probe_takes_nothing(redis_url: str) -> None:
    locks = Locks(redis.Redis.from_url(redis_url))
    assert locks.acquire("j1", [exclusive("cluster")], ttl=30, probe=True) is None
    assert locks.holders("cluster") == {}
    assert locks.acquire("j2", [exclusive("cluster")], ttl=30) is None


def test_a_client_that_decodes_replies_gets_the_same_busy(redis_url: str) -> None:
    locks = Locks(redis.Redis.from_url(redis_url, decode_responses=True))
    assert locks.acquire("j1", [exclusive("cluster")], ttl=30) is None
    assert locks.acquire("j2", [shared("cluster")], ttl=30) == Busy("cluster", "j1")


def test_evict_frees_only_the_named_holders(redis_url: str) -> None:
    """/dr unlock: the holders found gone are removed, a newer one stays; the key goes with
    its last holder; naming nobody or only strangers changes nothing."""
    client = redis.Redis.from_url(redis_url)
    locks = Locks(client)
    locks.acquire("gone", [shared("cluster")], ttl=30)
    locks.acquire("newer", [shared("cluster")], ttl=30)
    assert locks.evict("cluster", []) == 0
    assert locks.evict("cluster", ["stranger"]) == 0
    assert set(locks.holders("cluster")) == {"gone", "newer"}
    assert locks.evict("cluster", ["gone"]) == 1
    assert set(locks.holders("cluster")) == {"newer"}
    assert locks.evict("cluster", ["newer", "stranger"]) == 1
    assert client.exists(PREFIX + "cluster") == 0


def test_a_release_on_a_transaction_happens_when_it_commits(redis_url: str) -> None:
    """The runner frees a job's locks in the transaction that writes its end: until that
    commits, the job still holds them."""
    client = redis.Redis.from_url(redis_url)
    locks = Locks(client)
    locks.acquire("j1", [exclusive("cluster")], ttl=30)
    with client.pipeline(transaction=True) as pipe:
        locks.release("j1", [exclusive("cluster")], client=pipe)
        assert set(locks.holders("cluster")) == {"j1"}
        pipe.execute()
    assert locks.holders("cluster") == {}

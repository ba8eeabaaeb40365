"""Autocomplete from the core's side: frontends only ask, and only offer what the caller may run.

Suggestions are a convenience, never a permission: the core validates every value again when the
command arrives. Nodes and hosts come from the inventory; Kustomizations, PVCs and CNPG clusters
from the names
the worker last listed (cached in Redis, because the bot holds no cluster credentials); job ids
from recent jobs, in the states the command can act on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import redis

from bot.config.policy import Caller
from bot.records.jobs import RETRYABLE, Job, JobStatus
from bot.records.locks import held
from bot.registry import COMMANDS
from bot.runtime import Runtime

LIMIT = 25  # Discord shows at most 25 suggestions; Slack's external selects are similar
SEEN = "drbot:seen:"  # + source: a Redis set of the names the worker last listed
KEEP_SECONDS = 7 * 86400
AT = ":at"  # + after SEEN + source: when the worker last listed them (an empty listing counts)
CACHED = ("kustomizations", "pvcs", "cnpg")
log = logging.getLogger("drbot.complete")

# Which jobs each job-id taking command can act on (others are still accepted and checked).
JOB_STATES: dict[str, Callable[[Job], bool]] = {
    "approve": lambda job: job.status == JobStatus.AWAITING_APPROVAL,
    "deny": lambda job: job.status == JobStatus.AWAITING_APPROVAL,
    "cancel": lambda job: not job.terminal,
    "retry": lambda job: job.status in RETRYABLE,
}


def remember(source: str, names: Iterable[str], client: redis.Redis | None = None) -> None:
    """Worker side: record the names just listed, for the bot's autocomplete (best effort).

    Without a client it uses the connection of the rq job being run; outside a job it does nothing.
    """
    if client is None:
        from rq import get_current_job

        job = get_current_job()
        if job is None:
            return
        client = job.connection
    key = SEEN + source
    try:
        with client.pipeline() as pipe:
            pipe.delete(key)
            values = sorted(set(names))
            if values:
                pipe.sadd(key, *values)
                pipe.expire(key, KEEP_SECONDS)
            pipe.set(key + AT, f"{time.time():.0f}", ex=KEEP_SECONDS)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not cache %s names for autocomplete: %s", source, exc)


def complete(rt: Runtime, caller: Caller, command: str, param: str, prefix: str) -> list[str]:
    """Up to 25 values for one parameter of one command, starting with (then containing) prefix."""
    spec = COMMANDS.get(command)
    if spec is None or caller.person is None or not rt.policy.may_request(caller, command):
        return []
    declared = next((p for p in spec.params if p.name == param), None)
    if declared is None or declared.complete is None or declared.complete_when is not None:
        return []  # a conditional source: the other argument is not known here
    return rank(values(rt, command, declared.complete), prefix.strip().lower())


def values(rt: Runtime, command: str, source: str) -> list[str]:
    if source == "nodes":
        return sorted(rt.inventory.nodes)
    if source == "hosts":
        return sorted(rt.inventory.hosts)
    if source in CACHED:
        return sorted(m.decode() for m in rt.client.smembers(SEEN + source))
    if source == "jobs":
        return job_ids(rt, command)
    if source == "commands":
        return sorted(name for name, spec in COMMANDS.items() if not spec.system)
    if source == "locks":
        return sorted({lease.key for lease in held(rt.client)})
    log.warning("unknown autocomplete source %r for /dr %s", source, command)
    return []


def job_ids(rt: Runtime, command: str) -> list[str]:
    """Recent job ids, newest first, that the command could act on."""
    wanted = JOB_STATES.get(command, lambda job: True)
    found = []
    for job_id in rt.store.recent(100):
        try:
            job = rt.store.get(job_id)
        except Exception:  # noqa: BLE001,S112  (a vanished or forged record is simply not offered)
            continue
        if wanted(job):
            found.append(job.id)
        if len(found) >= LIMIT:
            break
    return found


def rank(candidates: list[str], prefix: str) -> list[str]:
    starts = [c for c in candidates if c.lower().startswith(prefix)]
    contains = [c for c in candidates if prefix in c.lower() and c not in starts]
    return (starts + contains)[:LIMIT]


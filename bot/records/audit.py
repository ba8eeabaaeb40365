"""The audit trail: an append-only Redis stream plus the JSON log, never carrying secrets."""

from __future__ import annotations

import logging
import time

import redis

from bot.redact import REDACT

STREAM = "drbot:audit"
log = logging.getLogger("drbot.audit")


class Audit:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def record(self, action: str, outcome: str, *, person: str = "", account: str = "",
               job: str = "", detail: str = "") -> None:
        entry = {"action": action, "outcome": outcome, "person": person, "account": account,
                 "job": job, "detail": REDACT(detail)[:1000], "at": f"{time.time():.3f}"}
        log.info("audit %s %s", action, outcome, extra={"audit": entry, "job_id": job,
                                                        "person": person})
        try:
            self.client.xadd(STREAM, entry)
        except redis.RedisError:
            log.error("audit entry not stored in Redis (it is in this log)", extra={"audit": entry})

    def tail(self, count: int = 50) -> list[dict[str, str]]:
        return [{k.decode(): v.decode() for k, v in raw.items()}
                for _, raw in self.client.xrevrange(STREAM, count=count)]

"""The audit trail: an append-only Redis stream plus the JSON log, never carrying secrets.

The stream keeps the newest ``keep`` entries (DRBOT_AUDIT_KEEP, 100 000 by default): a Redis
writer able to make drbot refuse things over and over must not be able to fill Redis with their
audit entries. Every entry also goes to the log, which is where longer retention belongs.
"""

from __future__ import annotations

import logging
import time

import redis

from bot.redact import REDACT

STREAM = "drbot:audit"
log = logging.getLogger("drbot.audit")


KEEP = 100_000


class Audit:
    def __init__(self, client: redis.Redis, keep: int = KEEP) -> None:
        self.client = client
        self.keep = keep

    def record(self, action: str, outcome: str, *, person: str = "", account: str = "",
               job: str = "", detail: str = "") -> None:
        entry = {"action": action, "outcome": outcome, "person": person, "account": account,
                 "job": job, "detail": REDACT(detail)[:1000], "at": f"{time.time():.3f}"}
        log.info("audit %s %s", action, outcome, extra={"audit": entry, "job_id": job,
                                                        "person": person})
        try:
            self.client.xadd(STREAM, entry, maxlen=self.keep, approximate=True)  # type: ignore[arg-type]
        except redis.RedisError:
            log.error("audit entry not stored in Redis (it is in this log)", extra={"audit": entry})

    def tail(self, count: int = 50) -> list[dict[str, str]]:
        """The newest entries; read defensively (one written by someone else stays readable)."""
        return [{k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}
                for _, raw in self.client.xrevrange(STREAM, count=count)]

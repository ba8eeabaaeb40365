"""The audit trail: an append-only Redis stream plus the JSON log, never carrying secrets.

The stream keeps the newest ``keep`` entries (DRBOT_AUDIT_KEEP, 100 000 by default): a Redis
writer able to make drbot refuse things over and over must not be able to fill Redis with their
audit entries. Every entry also goes to the log, which is where longer retention belongs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import redis
from redis.client import Pipeline

from bot.redact import REDACT

STREAM = "drbot:audit"
PAGE = 500  # entries per read when scanning the stream
log = logging.getLogger("drbot.audit")


KEEP = 100_000


class Audit:
    def __init__(self, client: redis.Redis, keep: int = KEEP) -> None:
        self.client = client
        self.keep = keep

    def record(self, action: str, outcome: str, *, person: str = "", account: str = "",
               job: str = "", detail: str = "") -> None:
        entry = self.entry(action, outcome, person=person, account=account, job=job,
                           detail=detail)
        self.log(entry)
        try:
            self.stage(self.client, entry)
        except redis.RedisError:
            log.error("audit entry not stored in Redis (it is in this log)", extra={"audit": entry})

    @staticmethod
    def entry(action: str, outcome: str, *, person: str = "", account: str = "", job: str = "",
              detail: str = "") -> dict[str, str]:
        return {"action": action, "outcome": outcome, "person": person, "account": account,
                "job": job, "detail": REDACT(detail)[:1000], "at": f"{time.time():.3f}"}

    def stage(self, pipe: redis.Redis | Pipeline, entry: dict[str, str]) -> None:
        """Append ``entry`` to the stream through ``pipe``: inside the caller's transaction, the
        entry is written with what it records, in the same round trip (log it after, once)."""
        pipe.xadd(STREAM, entry, maxlen=self.keep, approximate=True)  # type: ignore[arg-type]

    @staticmethod
    def log(entry: dict[str, str]) -> None:
        log.info("audit %s %s", entry["action"], entry["outcome"],
                 extra={"audit": entry, "job_id": entry["job"], "person": entry["person"]})

    def tail(self, count: int = 50) -> list[dict[str, str]]:
        """The newest entries; read defensively (one written by someone else stays readable)."""
        return [{k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}
                for _, raw in self.client.xrevrange(STREAM, count=count)]

    def entries(self, since: float | None = None, *, person: str = "", job: str = "",
                limit: int | None = None) -> Iterator[dict[str, str]]:
        """Entries oldest first from ``since`` (epoch seconds; stream ids are milliseconds), those
        matching person and job; with ``limit``, only the newest that many. Read in pages, so an
        export of a long stream never holds it all."""
        if limit is not None:
            found = []
            for _, raw in self._pages_back(since):
                entry = _decoded(raw)
                if _matches(entry, person, job):
                    found.append(entry)
                    if len(found) >= limit:
                        break
            yield from reversed(found)
            return
        start = f"{int(since * 1000)}-0" if since else "-"
        while True:
            page = self.client.xrange(STREAM, min=start, count=PAGE)
            for entry_id, raw in page:
                entry = _decoded(raw)
                if _matches(entry, person, job):
                    yield entry
                start = "(" + entry_id.decode()
            if len(page) < PAGE:
                return

    def _pages_back(self, since: float | None) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
        end, low = "+", f"{int(since * 1000)}-0" if since else "-"
        while True:
            page = self.client.xrevrange(STREAM, max=end, min=low, count=PAGE)
            yield from page
            if len(page) < PAGE:
                return
            end = "(" + page[-1][0].decode()


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def _matches(entry: dict[str, str], person: str, job: str) -> bool:
    return (not person or entry.get("person") == person) and (not job or entry.get("job") == job
                                                               or f"job {job}" in entry.get("detail", ""))


def is_duration(text: str) -> bool:
    """'30m', '24h', '7d': a duration as the policy writes them."""
    from bot.config.policy import DURATION

    return bool(DURATION.match(text))


def since_epoch(text: str, now: float | None = None) -> float:
    """'30m', '24h', '7d' (that long ago) or an ISO date/time ('2026-12-01', UTC unless it says)."""
    from datetime import UTC, datetime

    from bot.config.policy import DURATION, seconds
    from bot.errors import CommandError

    if DURATION.match(text):
        return (now if now is not None else time.time()) - seconds(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"since: {text!r} is neither a duration (30m, 24h, 7d) nor a date "
                           "(2026-12-01 or 2026-12-01T08:00)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()

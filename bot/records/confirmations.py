"""The sealed confirmation of a job's phase: the one record by which the bot tells the worker
that a person allowed to do so typed /dr confirm (handlers/confirm.py says why it has this shape).

One owner for its key and its seal, so the bot side that writes it and the worker side that opens
it cannot drift apart: ``drbot:confirm:<job>:<phase>`` holds the record HMAC-signed with the key both
processes read from their configuration, bound to that key name, so a copy under another job or
phase does not open.
"""

from __future__ import annotations

from typing import Any

import redis

from bot.errors import RecordForged
from bot.records.signing import Signer

KEY = "drbot:confirm:"
KEEP_SECONDS = 7 * 86400


def key(job_id: str, phase: int) -> str:
    return f"{KEY}{job_id}:{phase}"


def write(client: redis.Redis, signer: Signer, record: dict[str, Any]) -> None:
    """Bot side: store the record for ``record['job']`` and ``record['phase']``, sealed."""
    name = key(str(record["job"]), int(record["phase"]))
    client.set(name, signer.seal(record, name), ex=KEEP_SECONDS)


def read(client: redis.Redis, signer: Signer, job_id: str, phase: int
         ) -> tuple[dict[str, Any] | None, str]:
    """Worker side: (the confirmation record, '') or (None, why it is refused); (None, '') when
    there is none."""
    raw = client.get(key(job_id, phase))
    if raw is None:
        return None, ""
    try:
        return signer.open(raw, f"confirmation of phase {phase} of job {job_id}",
                           key(job_id, phase)), ""
    except RecordForged as exc:
        return None, (f"{exc}: not written by drbot for this job and phase; check who can reach "
                      "drbot's Redis")

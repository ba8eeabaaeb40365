"""Files a job posts in its thread (the readiness picture), in Redis (key family ``drbot:file:``).

The worker stores the bytes under the job id and their SHA-256, and names that digest in a signed
event of the job (type ``file``); the relay posts the bytes only when they hash to the digest the
signed event names, so a file written into Redis by anyone else is never posted (DESIGN
"Security": Redis is not trusted). Files expire with the job's events.
"""

from __future__ import annotations

import hashlib
import re

import redis

FILE = "drbot:file:"
KEEP_SECONDS = 7 * 86400
MAX_BYTES = 8 * 1024 * 1024  # Discord's default attachment limit; a picture is far smaller
NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,120}\Z")
DIGEST = re.compile(r"\A[0-9a-f]{64}\Z")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key(job_id: str, sha: str) -> str:
    return f"{FILE}{job_id}:{sha}"


def put(client: redis.Redis, job_id: str, data: bytes) -> str:
    """Store ``data`` for ``job_id``; returns its digest."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"a file of {len(data)} bytes is over the {MAX_BYTES} bytes a thread "
                         "takes")
    sha = digest(data)
    client.set(key(job_id, sha), data, ex=KEEP_SECONDS)
    return sha


def get(client: redis.Redis, job_id: str, sha: str) -> bytes | None:
    """The bytes named by a signed event, or None when gone or not what was signed."""
    if not DIGEST.match(sha):
        return None
    data = client.get(key(job_id, sha))
    if not isinstance(data, bytes) or digest(data) != sha:
        return None
    return data

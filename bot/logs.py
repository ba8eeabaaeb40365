"""Logging: JSON lines carrying the job id and person wherever they are known; redacted.

The worker's runner binds the job id and the requesting person to a context variable for the
whole run of a job (`job_context`, `bind_person`); a filter on the handler copies them onto every
record logged meanwhile, whichever logger wrote it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from bot.redact import REDACT

EXTRAS = ("job_id", "person", "audit")
JOB: ContextVar[dict[str, str]] = ContextVar("drbot_job", default={})  # noqa: B039 (never mutated)


@contextmanager
def job_context(job_id: str, person: str = "") -> Iterator[None]:
    """Every log line inside carries this job id (and person, once known)."""
    token = JOB.set({"job_id": job_id, **({"person": person} if person else {})})
    try:
        yield
    finally:
        JOB.reset(token)


def bind_person(person: str) -> None:
    """Add the person to the current job context (known only once the record is read)."""
    current = JOB.get()
    if current:
        JOB.set({**current, "person": person})


class JobContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in JOB.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
                 "level": record.levelname, "logger": record.name,
                 "message": REDACT(record.getMessage())}
        for name in EXTRAS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["traceback"] = REDACT(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        tags = " ".join(f"{n}={getattr(record, n)}" for n in ("job_id", "person") if hasattr(record, n))
        return REDACT(f"{text} [{tags}]" if tags else text)


def setup(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else
                         PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(JobContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "kubernetes", "botocore", "rq.worker"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

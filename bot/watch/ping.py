"""The optional heartbeat: a GET to `backups.heartbeat_url` after every completed check.

A healthchecks.io-style service then learns when drbot itself stops checking. The URL usually
carries a secret token, so it is never logged; a failed ping is logged and never fails the check.
"""

from __future__ import annotations

import logging
import ssl
import urllib.error
import urllib.request

from bot.redact import REDACT

TIMEOUT = 5.0
log = logging.getLogger("drbot.watch")


def ping(url: str | None, timeout: float = TIMEOUT) -> bool:
    """True when the heartbeat service answered 2xx; never raises."""
    if not url:
        return False
    REDACT.add([url])
    if not url.startswith(("https://", "http://")):
        log.warning("backup watch: backups.heartbeat_url must be an http(s) URL; not pinged")
        return False
    context = ssl.create_default_context()  # verified, always
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:  # noqa: S310
            return 200 <= answer.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "code", None) or type(exc).__name__
        log.warning("backup watch: heartbeat ping failed (%s)", why)
        return False

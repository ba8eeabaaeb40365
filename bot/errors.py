"""Errors meant for the user, shown as written (errbot's CommandError).

Anything else raised while handling a command is a bug or an outage: it is logged with its traceback
and the user gets a short message naming the job or request id.
"""

from __future__ import annotations


class CommandError(Exception):
    """A refusal or bad input the user can act on: bad argument, not allowed, busy, preflight."""


class ConfigError(Exception):
    """A configuration file is invalid; the message names the file, the key and the fix."""


class QueueUnavailable(CommandError):
    """Redis cannot be reached; nothing was queued."""

    def __init__(self, detail: str = "") -> None:
        hint = f" ({detail})" if detail else ""
        super().__init__(f"queue unavailable{hint}: nothing was queued; try again in a minute, "
                         "and tell an admin if it persists")


class RecordForged(Exception):
    """A record in Redis carries no valid signature: someone other than drbot wrote it."""

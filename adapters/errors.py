"""The errors every adapter raises. Vendor exceptions never leave an adapter.

Each message is written for an operator: what happened, on what, and what to do about it.
``temporary`` tells a caller whether trying again later may help (kopf's temporary/permanent split).
"""

from __future__ import annotations


class AdapterError(Exception):
    """An outside system refused or failed an operation; the message is shown to operators."""

    temporary = False


class Unreachable(AdapterError):
    """The system could not be reached at all (connection refused, DNS, TLS, every endpoint down)."""

    temporary = True


class NotFound(AdapterError):
    """The named object does not exist."""


class Conflict(AdapterError):
    """The object is busy or locked by someone else (a VM lock, a Terraform state lock, a PDB)."""

    temporary = True


class Refused(AdapterError):
    """The system refused the operation as it stands (e.g. destroying a running VM)."""


class Denied(AdapterError):
    """The credentials are valid but lack the permission for this operation (S3 AccessDenied):
    granting it is the fix, not retrying or changing the key."""


class TimedOut(AdapterError):
    """A wait ran out before the system reached the expected state."""

    temporary = True


class Cancelled(AdapterError):
    """The operation was cancelled on request; the message says what state was left behind."""

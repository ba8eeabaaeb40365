"""One module per /dr command; importing this package registers them all."""

from handlers import approve, cancel, help, jobs, reconcile, retry, status

__all__ = ["approve", "cancel", "help", "jobs", "reconcile", "retry", "status"]

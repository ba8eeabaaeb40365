"""What both ports read of drbot's records through a runtime: a control command's
(bot/chat/control.py) and a step's (bot/worker/steprecords.py). Each side adds what only it may
do; the reads they share live here once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.records import signals
from bot.records.locks import Lease, held

if TYPE_CHECKING:
    from bot.config.policy import Policy
    from bot.records.audit import Audit
    from bot.records.jobs import Job
    from bot.runtime import Runtime


class RecordsView:
    """Reads through ``self.rt``, the runtime of the process that holds the view."""

    rt: Runtime

    @property
    def policy(self) -> Policy:
        return self.rt.policy

    @property
    def audit(self) -> Audit:
        return self.rt.audit

    def job(self, job_id: str) -> Job:
        return self.rt.store.get(job_id)

    def active(self) -> list[str]:
        return self.rt.store.active()

    def leases(self) -> list[Lease]:
        return held(self.rt.client)

    def subprocesses(self, job_id: str) -> list[str]:
        return signals.living_subprocesses(self.rt.client, job_id)

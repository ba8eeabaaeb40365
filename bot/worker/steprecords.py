"""The runner's side of the runbook's Records port (bot/runbook.py): drbot's records reached
with the worker's runtime (its patient connection and signing key), which a handler never holds."""

from __future__ import annotations

from typing import Any

from bot.records import confirmations
from bot.records.view import RecordsView
from bot.runtime import Runtime
from bot.watch.check import CheckOutcome
from bot.watch.evaluate import Finding, sort
from bot.worker.services import Services


class StepRecords(RecordsView):
    """One job's view of drbot's records."""

    def __init__(self, rt: Runtime, services: Services) -> None:
        self.rt = rt
        self.services = services

    def confirmation(self, job_id: str, phase: int) -> tuple[dict[str, Any] | None, str]:
        return confirmations.read(self.rt.client, self.rt.signer, job_id, phase)

    def evict(self, key: str, holders: list[str]) -> int:
        return self.rt.locks.evict(key, holders)

    def remember(self, source: str, names: list[str]) -> None:
        from bot.chat.complete import remember  # the cache the bot's autocomplete reads

        remember(source, names, self.rt.client)

    def check_backups(self) -> CheckOutcome:
        from bot.watch import check

        return check.run(self.rt.client, self.services, self.rt.inventory,
                         key=self.rt.settings.key())

    def latest_backup_check(self) -> tuple[list[Finding], dict[str, Any] | None]:
        from bot.watch.alert_states import Watch

        watch = Watch(self.rt.client)
        return sort(watch.findings()), watch.last()

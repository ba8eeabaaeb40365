"""The core: one request from any frontend becomes a reply, a job, or a clear refusal.

This is the single error boundary (as in slack-bolt): CommandError is shown as written; a Redis
outage becomes "queue unavailable"; anything else is logged with its traceback and the user gets a
short message with a reference, never a traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from redis.client import Pipeline

from bot import registry
from bot.chat import names
from bot.chat.control import CoreControl, describe
from bot.config.policy import Caller
from bot.control import Reply
from bot.errors import CommandError, QueueUnavailable, RecordForged
from bot.grammar import Parsed
from bot.metrics import COMMANDS
from bot.records.jobs import Job, busy_text, new_id
from bot.records.queue import enqueue, queue
from bot.registry import CommandSpec
from bot.runtime import Runtime

log = logging.getLogger("drbot.core")


@dataclass(frozen=True)
class Request:
    """A platform request in neutral form; frontends build it, the core never sees platform types."""

    frontend: str
    account: str
    text: str
    request_id: str
    channel: str = ""
    platform_roles: tuple[str, ...] = ()


class Core:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        registry.load(rt.settings.plugins)
        self.queue = queue(rt.client, rt.settings.queue)

    def handle(self, request: Request) -> Reply:
        reply = self._guarded(request)
        words = request.text.split()[:2]
        if words[:1] == ["/dr"]:
            words = words[1:]
        name = words[0] if words else "help"  # a bare /dr is a request for help
        COMMANDS.labels(name if name in registry.COMMANDS else "unknown",
                        "ok" if reply.ok else "refused").inc()
        return reply

    def _guarded(self, request: Request) -> Reply:
        try:
            return self._handle(request)
        except CommandError as exc:
            return Reply(str(exc), ok=False, ephemeral=True)
        except redis.RedisError as exc:
            log.warning("redis unavailable: %s", exc)
            return Reply(str(QueueUnavailable()), ok=False, ephemeral=True)
        except RecordForged as exc:
            self._audit(request, "forged-record", str(exc))
            return Reply("refused: that job's record was not written by drbot; this was audited",
                         ok=False, ephemeral=True)
        except Exception:
            log.exception("request %s failed", request.request_id)
            return Reply(f"internal error (reference {request.request_id}); nothing was queued. "
                         "An admin can find the details in drbot's log.", ok=False,
                         ephemeral=True)

    def _audit(self, request: Request, outcome: str, detail: str = "",
               caller: Caller | None = None) -> None:
        try:
            self.rt.audit.record("command", outcome, person=caller.person or "" if caller else "",
                                 account=request.account, detail=f"{request.text!r} {detail}")
        except redis.RedisError:
            log.warning("audit unavailable for %s", request.request_id)

    def _phrase(self, command: str) -> str | None:
        rule = self.rt.policy.rule(command)
        return rule.confirm if rule else None

    def _handle(self, request: Request) -> Reply:
        try:
            spec, parsed = registry.parse(request.text, self._phrase)
        except CommandError as exc:
            self._audit(request, "bad-input", str(exc))
            raise
        if spec.system:
            self._audit(request, "refused-system-command")
            raise CommandError(f"/dr {spec.name} is run by drbot's scheduler, not from chat; "
                               "/dr help lists what you may run")
        caller = self.rt.policy.caller(request.account, request.platform_roles)
        if caller.person is None:
            self._audit(request, "refused-unknown-account")
            raise CommandError(self.rt.policy.not_listed(request.account))
        if spec.name != "help" and not self.rt.policy.may_request(caller, spec.name):
            self._audit(request, "refused-not-allowed", caller=caller)
            raise CommandError(f"{caller.person} may not run /dr {spec.name}; /dr help lists what "
                               f"you may run. Ask {self.rt.policy.data.admin_contact} if you need it.")
        if spec.kind == "control":
            self._audit(request, "accepted", caller=caller)
            return spec.fn(CoreControl(self.rt, caller, parsed, request.frontend))
        return self.submit(spec, parsed, caller, request)

    def submit(self, spec: CommandSpec, parsed: Parsed, caller: Caller, request: Request) -> Reply:
        rule = self.rt.policy.rule(spec.name)
        if rule and rule.confirm and not parsed.dry_run and parsed.confirm != rule.confirm:
            self._audit(request, "refused-confirmation", caller=caller)
            raise CommandError(f'/dr {spec.name} needs its confirmation phrase: add '
                               f'--confirm "{rule.confirm}"')
        try:
            names.check(self.rt, spec, parsed.args)
        except CommandError as exc:
            self._audit(request, "refused-unknown-name", str(exc), caller)
            raise
        if not parsed.dry_run:
            keys = spec.locks(parsed.args, self.rt.inventory)
            busy = self.rt.locks.acquire("probe", keys, ttl=1, probe=True)
            if busy:
                self._audit(request, "refused-busy", busy.key, caller)
                raise CommandError(busy_text(self.rt.store, busy.key, busy.holder))
        assert caller.person is not None
        try:
            counted = self.rt.rates.check(caller.person)
        except CommandError as exc:
            self._audit(request, "refused-rate", str(exc), caller)
            raise
        job = Job(new_id(), spec.name, dict(parsed.args), caller.person, caller.account,
                  request.frontend, request.request_id, dry_run=parsed.dry_run,
                  confirm=parsed.confirm, timeout=spec.timeout)
        entry: dict[str, str] = {}

        def admitted(pipe: Pipeline, j: Job) -> None:
            """The queueing, the rate count and the audit entry, in the job's own write: one
            round trip, and a duplicate delivery neither counts nor audits twice."""
            enqueue(self.queue, pipe, j, "plan")
            self.rt.rates.count(pipe, counted)
            entry.update(self.rt.audit.entry(
                "command", "queued", person=caller.person or "", account=request.account,
                detail=f"{request.text!r} job {j.id}"))
            self.rt.audit.stage(pipe, entry)
        job, created = self.rt.store.create(job, admitted)
        if not created:
            return Reply(f"already submitted as job {job.id} ({job.status})", ephemeral=True)
        self.rt.audit.log(entry)
        what = "dry run of" if job.dry_run else "planning"
        return Reply(f"job {job.id}: {what} {describe(job)}", job_id=job.id)

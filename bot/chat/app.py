"""The bot process: the core, the relay thread, the reaper, and the frontends around them."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis

from bot.chat import relay
from bot.chat.complete import complete
from bot.chat.core import Core, Reply, Request
from bot.chat.frontends.base import Frontend
from bot.chat.reaper import reap
from bot.chat.relay import Relay, attach
from bot.chat.render import card
from bot.runtime import Runtime

if TYPE_CHECKING:
    from bot.watch.notify import Outbound

SEEN = "drbot:delivery:"  # + "<platform>:<id>": deliveries already handled (platforms redeliver)

log = logging.getLogger("drbot.app")

# How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms). The
# work after an ack (the core, signing, Redis, the relay) runs in threads; each time the event
# loop that acknowledges requests wakes up it needs the GIL back, and at 5 ms per hand-over a
# burst of commands adds tens of ms to the next acks. 1 ms keeps the hand-over short.
SWITCH_INTERVAL = 0.001


class BotApp:
    """The bot process's core, relay and reaper; to its frontends, the ChatPort they call."""

    def __init__(self, rt: Runtime, frontends: dict[str, Frontend]) -> None:
        self.rt = rt
        self.core = Core(rt)
        self.frontends = frontends
        self.relay: Relay | None = None
        self._thread: threading.Thread | None = None
        self.outbound: Outbound | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self.relay = Relay(self.rt, self.frontends, loop, on_tick=self._reap)
        self._thread = threading.Thread(target=self.relay.run, name="relay", daemon=True)
        self._thread.start()
        from bot.watch import gauges
        from bot.watch.notify import Outbound

        gauges.install(self.rt.client)
        self.outbound = Outbound(lambda: self.rt.inventory.alerts.apprise, self.rt.client,
                                 self.rt.signer)
        threading.Thread(target=self.outbound.run, name="alerts-out", daemon=True).start()

    def stop(self) -> None:
        if self.outbound:
            self.outbound.stop()
        if self.relay:
            self.relay.stop()
        if self._thread:
            self._thread.join(10)

    def _reap(self) -> None:
        for job_id in reap(self.rt):
            log.info("reaper changed job %s", job_id, extra={"job_id": job_id})
        if self.relay and self.rt.inventory.alerts.channels:
            from bot.watch import notify

            notify.deliver(self.rt.client, self.frontends, self.rt.inventory.alerts.channels,
                           self.relay.call, self.rt.signer)

    async def submit(self, request: Request) -> Reply:
        """Run a request through the core off the event loop (it does blocking Redis calls)."""
        return await asyncio.to_thread(self.core.handle, request)

    @property
    def lab(self) -> bool:
        return bool(self.rt.policy.lab)

    def needs_confirmation(self, command: str) -> bool:
        rule = self.rt.policy.rule(command)
        return bool(rule and rule.confirm)

    async def complete(self, account: str, platform_roles: Sequence[str], command: str,
                       param: str, prefix: str) -> list[str]:
        caller = self.rt.policy.caller(account, tuple(platform_roles))
        return await asyncio.to_thread(complete, self.rt, caller, command, param, prefix)

    async def first_delivery(self, key: str) -> bool:
        """Unknown (Redis down) counts as first: the core then answers "queue unavailable"."""
        try:
            return bool(await asyncio.to_thread(self.rt.client.set, SEEN + key, 1, nx=True,
                                                ex=3600))
        except redis.RedisError:
            return True

    async def audit(self, kind: str, outcome: str, **fields: str) -> None:
        await asyncio.to_thread(self.rt.audit.record, kind, outcome, **fields)

    async def unsettled(self, job_ids: Sequence[str],
                        alert_channel: str) -> tuple[list[str], list[str]]:
        return await asyncio.to_thread(self._unsettled, job_ids, alert_channel)

    def _unsettled(self, job_ids: Sequence[str], alert_channel: str) -> tuple[list[str], list[str]]:
        from bot.watch.notify import pending

        busy, waiting = [], []
        for job_id in job_ids:
            job = self.rt.store.get(job_id)
            if relay.awaiting_shown(self.rt.client, job):
                waiting.append(job_id)
            elif not relay.settled(self.rt.client, job):
                busy.append(job_id)
        if alert_channel in self.rt.inventory.alerts.channels and pending(self.rt.client, alert_channel):
            busy.append("alerts")
        return busy, waiting

    async def open_thread(self, frontend: Frontend, channel: str, reply: Reply) -> None:
        """Create the job's thread with its status card, then let the relay speak there."""
        if not reply.job_id:
            return
        job_id = reply.job_id
        # read, verify and render in a thread: the loop is left to acknowledge other requests
        view = await asyncio.to_thread(lambda: card(self.rt.store.get(job_id)))
        thread = await frontend.open_thread(channel, view)
        await asyncio.to_thread(attach, self.rt, reply.job_id, frontend.name, thread)

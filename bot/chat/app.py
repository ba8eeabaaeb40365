"""The bot process: the core, the relay thread, the reaper, and the frontends around them."""

from __future__ import annotations

import asyncio
import logging
import threading

from bot.chat.core import Core, Reply, Request
from bot.chat.frontends.base import Frontend
from bot.chat.reaper import reap
from bot.chat.relay import Relay, attach
from bot.chat.render import card
from bot.runtime import Runtime

log = logging.getLogger("drbot.app")


class BotApp:
    """Holds what frontends need: `submit` (ack path) and the relay that speaks in threads."""

    def __init__(self, rt: Runtime, frontends: dict[str, Frontend]) -> None:
        self.rt = rt
        self.core = Core(rt)
        self.frontends = frontends
        self.relay: Relay | None = None
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.relay = Relay(self.rt, self.frontends, loop, on_tick=self._reap)
        self._thread = threading.Thread(target=self.relay.run, name="relay", daemon=True)
        self._thread.start()
        from bot.watch import gauges

        gauges.install(self.rt.client)

    def stop(self) -> None:
        if self.relay:
            self.relay.stop()
        if self._thread:
            self._thread.join(10)

    def _reap(self) -> None:
        for job_id in reap(self.rt):
            log.info("reaper changed job %s", job_id, extra={"job_id": job_id})
        if self.relay and self.rt.inventory.alerts:
            from bot.watch import notify

            notify.deliver(self.rt.client, self.frontends, self.rt.inventory.alerts, self.relay.call)

    async def submit(self, request: Request) -> Reply:
        """Run a request through the core off the event loop (it does blocking Redis calls)."""
        return await asyncio.to_thread(self.core.handle, request)

    async def open_thread(self, frontend: Frontend, channel: str, reply: Reply) -> None:
        """Create the job's thread with its status card, then let the relay speak there."""
        if not reply.job_id:
            return
        job = await asyncio.to_thread(self.rt.store.get, reply.job_id)
        thread = await frontend.open_thread(channel, card(job))
        await asyncio.to_thread(attach, self.rt.client, reply.job_id, frontend.name, thread)

"""The lab's Proxmox VE API: fakepve, with requests that can be held before or after they are
applied (lab.holds), the fault-injection point of the Proxmox side."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from fakepve import FakePve

from lab.holds import Holds


class LabPve(FakePve):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.holds = Holds()

    def _build_app(self) -> web.Application:
        """fakepve's application with one more middleware, outermost: it sees each request
        before fakepve does anything with it and the answer after fakepve applied it."""
        app = super()._build_app()
        app.middlewares.insert(0, self._hold)
        return app

    @web.middleware
    async def _hold(self, request: web.Request, handler: Any) -> web.StreamResponse:
        await self.holds.pause(request.method, request.path, after=False)
        response = await handler(request)
        await self.holds.pause(request.method, request.path, after=True)
        return response

"""An aiohttp listener that gives each request's headers a deadline.

aiohttp has no header-read timeout: a client that sends its headers a byte at a time holds a
connection (and a slot) for as long as its keep-alive allows, an hour by default. Slack sends a
whole request at once, so a request whose headers are not in within a few seconds is dropped,
as is a connection that stays idle between requests as long.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

HEADER_SECONDS = 10.0


class HeaderDeadline(RequestHandler):
    """aiohttp's request handler, closing a connection whose next request's headers are late."""

    header_seconds = HEADER_SECONDS

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._deadline = self._loop.call_later(self.header_seconds, self._late, self._request_count)

    def _late(self, count: int) -> None:
        if self._request_count != count or self._current_request is not None:
            self._arm()  # a request came in (or is being answered): the next one gets its own
            return
        if self.transport is not None:
            self.force_close()
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._deadline.cancel()
            self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._deadline.cancel()
        super().connection_lost(exc)


async def listen(runner: web.AppRunner, host: str | None, port: int,
                 header_seconds: float = HEADER_SECONDS) -> tuple[asyncio.Server, int]:
    """Serve ``runner``'s app (set up already) with header deadlines; returns the server and
    the port it listens on (``port`` 0 picks a free one)."""
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()

    def handler() -> HeaderDeadline:
        made = HeaderDeadline(server, loop=loop, access_log=None, keepalive_timeout=75)
        made.header_seconds = header_seconds
        return made
    listener = await loop.create_server(handler, host, port)
    return listener, listener.sockets[0].getsockname()[1]

"""The Slack HTTP listener drops a connection whose request headers do not arrive in time."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from bot.chat.frontends.http_listener import listen


async def _serve(header_seconds: float) -> tuple[web.AppRunner, asyncio.Server, int]:
    app = web.Application()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")
    app.router.add_post("/slack/events", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listener, port = await listen(runner, "127.0.0.1", 0, header_seconds)
    return runner, listener, port


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (reads end); blocks on the socket itself."""
    sock.settimeout(30)
    return sock.recv(1) == b""


async def _scenario() -> None:
    runner, listener, port = await _serve(header_seconds=0.5)
    try:
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        assert await asyncio.to_thread(_closed_by_server, slow)
        idle = socket.create_connection(("127.0.0.1", port))  # sends nothing at all
        assert await asyncio.to_thread(_closed_by_server, idle)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                     b"Connection: close\r\n\r\n")
        answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
        writer.close()
        slow.close()
        idle.close()
    finally:
        listener.close()
        await runner.cleanup()


def test_slow_headers_are_cut_off_and_whole_requests_served() -> None:
    asyncio.run(_scenario())

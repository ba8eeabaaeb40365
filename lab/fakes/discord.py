"""A small fake of Discord for discord.py: the REST API (recording every call) and a gateway.

It binds 127.0.0.1 on a free port and runs on its own thread and event loop. discord.py is pointed at
it with `discord.http.Route.BASE` and `DiscordWebSocket.DEFAULT_GATEWAY`. The gateway says HELLO,
answers IDENTIFY with READY and heartbeats with ACKs, and lets a test dispatch events
(INTERACTION_CREATE payloads built by the helpers below, shaped as Discord sends them).

`expire_interaction_tokens()` makes every interaction-token route (callbacks, followups) answer
401 code 50027 "Invalid Webhook Token", as Discord does 15 minutes after an interaction.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType, web

APP_ID = 900000000000000001
BOT = {"id": "900000000000000002", "username": "drbot", "discriminator": "0", "global_name": "drbot",
       "avatar": None, "bot": True}
GUILD = 700000000000000001
CHANNEL = 700000000000000010
STAMP = "2025-01-01T00:00:00.000000+00:00"
JSON = {"Content-Type": "application/json"}  # exactly this: discord.py checks it verbatim


@dataclass
class Call:
    method: str
    path: str
    body: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


class FakeDiscord:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[int, dict[str, Any]] = {}
        self.attached: dict[int, dict[str, bytes]] = {}  # message id -> its files' bytes
        self.threads: dict[int, dict[str, Any]] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.tokens_expired = False
        self.failures: list[tuple[str, re.Pattern[str], int, int, str]] = []
        self.ids = itertools.count(800000000000000001)
        self.sockets: list[web.WebSocketResponse] = []
        self.sequence = itertools.count(2)
        self.identified = 0
        self.gateway_down = False
        self.interaction_channels: dict[str, int] = {}  # token -> channel, for responses
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    # -- control from tests ---------------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def reset(self) -> None:
        self.calls.clear()
        self.messages.clear()
        self.threads.clear()
        self.failures.clear()
        self.tokens_expired = False
        self.gateway_down = False

    def expire_interaction_tokens(self) -> None:
        self.tokens_expired = True

    def fail(self, method: str, path: str, status: int, code: int, text: str) -> None:
        """Answer requests matching (method, path regex) with an error from now on."""
        self.failures.append((method, re.compile(path), status, code, text))

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway DISPATCH to every connected client."""
        frame = json.dumps({"op": 0, "t": event, "s": next(self.sequence), "d": data})
        asyncio.run_coroutine_threadsafe(self._send_all(frame), self.loop).result(5)

    def drop_connections(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close_all(), self.loop).result(5)

    def made(self, method: str, pattern: str) -> list[Call]:
        return [c for c in list(self.calls) if c.method == method and re.search(pattern, c.path)]

    def in_channel(self, channel_id: int) -> list[dict[str, Any]]:
        return [m for m in list(self.messages.values()) if m["channel_id"] == str(channel_id)]

    # -- server ---------------------------------------------------------------------------------
    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)  # as in lab.servers.quiet_test_server
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        await self._close_all()
        if self._runner:
            await self._runner.cleanup()

    async def _send_all(self, frame: str) -> None:
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.send_str(frame)

    async def _close_all(self) -> None:
        for ws in list(self.sockets):
            await ws.close()

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.gateway_down:
            return web.Response(status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 30000}}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                if frame["op"] == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif frame["op"] in (2, 6):  # IDENTIFY (or RESUME, answered as a new session)
                    self.identified += 1
                    await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": 1, "d": {
                        "v": 10, "user": BOT, "guilds": [], "session_id": f"s{self.identified}",
                        "resume_gateway_url": self.gateway,
                        "application": {"id": str(APP_ID), "flags": 0}}}))
        finally:
            self.sockets.remove(ws)
        return ws

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body, files = await self._body(request)
        self.calls.append(Call(request.method, path, body, files))
        for method, pattern, status, code, text in self.failures:
            if method == request.method and pattern.search(path):
                return self._error(status, code, text)
        if self.tokens_expired and re.match(r"^/(interactions|webhooks)/", path):
            return self._error(401, 50027, "Invalid Webhook Token")
        result = self._route(request.method, path, body, files)
        if result is None:
            return web.Response(status=204)
        if isinstance(result, web.Response):
            return result
        return web.Response(body=json.dumps(result).encode(), headers=JSON)

    @staticmethod
    def _error(status: int, code: int, text: str) -> web.Response:
        return web.Response(status=status, body=json.dumps({"code": code, "message": text}).encode(),
                            headers=JSON)

    @staticmethod
    async def _body(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            files = {f.filename: f.file.read() for f in form.values() if hasattr(f, "file")}
            payload = form.get("payload_json")
            return (json.loads(payload) if isinstance(payload, str) else {}), files
        raw = await request.read()
        return (json.loads(raw) if raw else {}), {}

    def _route(self, method: str, path: str, body: dict[str, Any],
               files: dict[str, bytes]) -> Any:
        if path == "/users/@me":
            return BOT
        if path == "/oauth2/applications/@me":
            return {"id": str(APP_ID), "name": "drbot", "icon": None, "description": "",
                    "bot_public": False, "bot_require_code_grant": False, "owner": BOT,
                    "verify_key": "00", "flags": 0}
        if path == "/gateway/bot":
            return {"url": self.gateway, "shards": 1, "session_start_limit": {
                "total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}
        if match := re.fullmatch(r"/applications/\d+(?:/guilds/(\d+))?/commands", path):
            scope = match.group(1) or "global"
            self.commands[scope] = [dict(c, id=str(next(self.ids)), application_id=str(APP_ID),
                                         version="1") for c in body]  # type: ignore[arg-type]
            return self.commands[scope]
        if re.fullmatch(r"/interactions/\d+/[^/]+/callback", path):
            return self._callback(path, body, files)
        if match := re.fullmatch(r"/webhooks/\d+/[^/]+", path):
            return self._store(self._followup_channel(path), body, files)
        if match := re.fullmatch(r"/webhooks/\d+/[^/]+/messages/(@original|\d+)", path):
            return self._original(path, method, body, files)
        if match := re.fullmatch(r"/channels/(\d+)/messages", path):
            return self._store(int(match.group(1)), body, files) if method == "POST" else []
        if match := re.fullmatch(r"/channels/(\d+)/messages/(\d+)", path):
            found = self.messages.get(int(match.group(2)))
            if found is None:
                return self._error(404, 10008, "Unknown Message")
            if method == "PATCH":
                found.update({k: v for k, v in body.items() if k in ("content", "embeds",
                                                                     "components")})
                found["edited_timestamp"] = STAMP
            return found
        if match := re.fullmatch(r"/channels/(\d+)/messages/(\d+)/threads", path):
            thread_id = int(match.group(2))  # Discord gives the thread the root message's id
            thread = {"id": str(thread_id), "type": 11, "guild_id": str(GUILD),
                      "parent_id": match.group(1), "owner_id": BOT["id"], "name": body["name"],
                      "message_count": 0, "member_count": 1, "rate_limit_per_user": 0,
                      "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                          "archive_timestamp": STAMP, "locked": False}}
            self.threads[thread_id] = thread
            return thread
        return self._error(404, 0, f"the fake does not know {method} {path}")

    def _token(self, path: str) -> str:
        return path.split("/")[3]

    def _followup_channel(self, path: str) -> int:
        return self.interaction_channels.get(self._token(path), 0)

    def _callback(self, path: str, body: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        interaction_id, token = path.split("/")[2], path.split("/")[3]
        kind = body.get("type")
        result: dict[str, Any] = {"interaction": {
            "id": interaction_id, "type": 2, "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(body.get("data", {}).get("flags", 0) & 64)}}
        if kind in (4, 5):
            stored = self._store(self.interaction_channels.get(token, 0), body.get("data", {}),
                                 files, original=token)
            result["interaction"]["response_message_id"] = stored["id"]
            result["resource"] = {"type": kind, "message": stored}
        return result

    def _original(self, path: str, method: str, body: dict[str, Any],
                  files: dict[str, bytes]) -> Any:
        token = self._token(path)
        found = next((m for m in self.messages.values() if m.get("original") == token), None)
        if found is None:
            return self._error(404, 10008, "Unknown Message")
        if method == "PATCH":
            found.update({k: v for k, v in body.items() if k in ("content", "embeds", "components")})
        return found

    def _store(self, channel: int, body: dict[str, Any], files: dict[str, bytes],
               original: str | None = None) -> dict[str, Any]:
        message_id = next(self.ids)
        stored = {"id": str(message_id), "channel_id": str(channel), "author": BOT,
                  "content": body.get("content") or "", "timestamp": STAMP,
                  "edited_timestamp": None, "tts": False, "mention_everyone": False,
                  "mentions": [], "mention_roles": [], "pinned": False, "type": 0,
                  "embeds": body.get("embeds") or [], "components": body.get("components") or [],
                  "flags": body.get("flags") or 0,
                  "attachments": [{"id": str(next(self.ids)), "filename": name, "size": len(data),
                                   "url": f"{self.base}/files/{name}", "proxy_url": "",
                                   "content": data.decode(errors="replace")}
                                  for name, data in files.items()]}
        if body.get("message_reference"):
            stored["message_reference"] = body["message_reference"]
        if original:
            stored["original"] = original
        self.messages[message_id] = stored
        self.attached[message_id] = dict(files)
        return stored

    # -- payloads as Discord sends them --------------------------------------------------------
    def interaction(self, kind: int, data: dict[str, Any], user: int, *, roles: tuple[int, ...] = (),
                    channel: int = CHANNEL, channel_type: int = 0, guild: int | None = GUILD,
                    message: dict[str, Any] | None = None) -> dict[str, Any]:
        interaction_id = str(next(self.ids))
        token = f"token-{interaction_id}"
        self.interaction_channels[token] = channel
        person = {"id": str(user), "username": f"user{user}", "discriminator": "0",
                  "global_name": None, "avatar": None}
        found: dict[str, Any] = {
            "id": interaction_id, "application_id": str(APP_ID), "type": kind, "token": token,
            "version": 1, "data": data, "channel_id": str(channel), "locale": "en-US",
            "app_permissions": "0", "entitlements": [], "attachment_size_limit": 8388608,
            "authorizing_integration_owners": {}, "context": 0 if guild else 1,
            "channel": {"id": str(channel), "type": channel_type}}
        if guild:
            found["guild_id"] = str(guild)
            found["guild_locale"] = "en-US"
            found["channel"].update({"guild_id": str(guild), "name": "ops", "position": 0,
                                     "permission_overwrites": [], "nsfw": False})
            found["member"] = {"user": person, "roles": [str(r) for r in roles], "joined_at": STAMP,
                               "deaf": False, "mute": False, "permissions": "0", "flags": 0}
        else:
            found["user"] = person
            found["channel"]["recipients"] = [person]
        if message is not None:
            found["message"] = message
        return found

    def command(self, sub: str, user: int, options: dict[str, Any] | None = None,
                focused: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """An application command (or, with `focused`, an autocomplete) for /dr <sub>."""
        opts = []
        for name, value in (options or {}).items():
            kind = 5 if isinstance(value, bool) else 3
            opts.append({"type": kind, "name": name, "value": value}
                        | ({"focused": True} if name == focused else {}))
        data = {"id": "1", "name": "dr", "type": 1,
                "options": [{"type": 1, "name": sub, "options": opts}]}
        return self.interaction(4 if focused else 2, data, user, **kwargs)

    def click(self, message: dict[str, Any], custom_id: str, user: int, **kwargs: Any
              ) -> dict[str, Any]:
        data = {"custom_id": custom_id, "component_type": 2}
        return self.interaction(3, data, user, channel=int(message["channel_id"]), message=message,
                                **kwargs)


@pytest.fixture(scope="session")
def discord_server() -> Iterator[FakeDiscord]:
    server = FakeDiscord()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_discord(discord_server: FakeDiscord) -> Iterator[FakeDiscord]:
    discord_server.reset()
    yield discord_server
    discord_server.reset()

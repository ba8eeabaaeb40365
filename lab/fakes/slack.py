"""A small fake of the Slack Web API and of Socket Mode, on 127.0.0.1, recording every call.

No usable Slack emulator exists, so this answers the methods drbot uses the way Slack does (form or
JSON bodies, `{"ok": ...}` answers, 429 with Retry-After, the three-step file upload) and speaks Socket
Mode's envelope protocol over a WebSocket (hello, envelopes with an envelope_id, the client's acks).
It runs on its own thread and event loop so sync tests and the benchmark can use it alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-test-app-token"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
TEAM = "T1"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str
    at: float = field(default_factory=time.monotonic)


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.uploads: dict[str, bytes] = {}
        self.responses: list[dict[str, Any]] = []  # posts to response_url
        self.acks: list[tuple[float, dict[str, Any]]] = []  # socket-mode acks, with arrival time
        self.sent: dict[str, float] = {}  # envelope id -> when it was sent
        self.not_in: set[str] = set()  # channels where the bot is not a member
        self.limits: dict[str, list[int]] = {}  # method -> Retry-After values of coming 429s
        self.sockets: list[web.WebSocketResponse] = []
        self.connections = 0
        self._ts = itertools.count(1)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-slack", daemon=True)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeSlack:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/upload/{file}", self._upload)
        app.router.add_post("/response/{id}", self._response)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        async def stop() -> None:
            for ws in list(self.sockets):
                await ws.close()
            if self._runner:
                await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self) -> str:
        return f"{self.url}/response/{uuid.uuid4().hex[:8]}"

    # -- the Web API ----------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _args(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or str(args.get("token", ""))
        self.calls.append(Call(method, args, token))
        waits = self.limits.get(method)
        if waits:
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(waits.pop(0))})
        return web.json_response(self.answer(method, args, token))

    def answer(self, method: str, args: dict[str, Any], token: str) -> dict[str, Any]:
        want = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != want:
            return {"ok": False, "error": "invalid_auth"}
        channel = str(args.get("channel") or args.get("channel_id") or "")
        if channel in self.not_in:
            return {"ok": False, "error": "not_in_channel"}
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        match method:
            case "auth.test":
                return {"ok": True, "url": "https://drbot-test.slack.com/", "team": "test", "user": "drbot",
                        "team_id": TEAM, "user_id": "UBOT", "bot_id": "BBOT"}
            case "apps.connections.open":
                return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}
            case "chat.postMessage":
                return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text")}}
            case "chat.update":
                return {"ok": True, "channel": channel, "ts": args.get("ts"), "text": args.get("text")}
            case "chat.postEphemeral":
                return {"ok": True, "message_ts": ts}
            case "files.getUploadURLExternal":
                file_id = f"F{uuid.uuid4().hex[:8].upper()}"
                return {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"}
            case "files.completeUploadExternal":
                files = args.get("files") or []
                return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        return {"ok": False, "error": "unknown_method"}

    async def _upload(self, request: web.Request) -> web.Response:
        self.uploads[request.match_info["file"]] = await request.read()
        return web.Response(text="OK - uploaded")

    async def _response(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    # -- Socket Mode ----------------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self.sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                      "debug_info": {"host": "fake-slack"},
                                      "connection_info": {"app_id": "A1"}}))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                data = json.loads(message.data)
                if "envelope_id" in data:
                    self.acks.append((time.monotonic(), data))
        if ws in self.sockets:
            self.sockets.remove(ws)
        return ws

    def envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """Send one Socket Mode envelope (`slash_commands` or `interactive`); return its id."""
        envelope_id = uuid.uuid4().hex

        async def send() -> None:
            self.sent[envelope_id] = time.monotonic()
            await self.sockets[-1].send_str(json.dumps({
                "envelope_id": envelope_id, "type": kind, "payload": payload,
                "accepts_response_payload": kind == "slash_commands", "retry_attempt": 0,
                "retry_reason": ""}))
        asyncio.run_coroutine_threadsafe(send(), self.loop).result(5)
        return envelope_id

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to move to a new connection, as Slack does every few hours."""
        async def send() -> None:
            await self.sockets[-1].send_str(json.dumps({"type": "disconnect", "reason": reason}))
        asyncio.run_coroutine_threadsafe(send(), self.loop).result(5)

    # -- for assertions -------------------------------------------------------------------------
    def of(self, method: str, where: Callable[[Call], bool] = lambda c: True) -> list[Call]:
        return [c for c in list(self.calls) if c.method == method and where(c)]

    def rate_limit(self, method: str, *retry_after: int) -> None:
        """The next len(retry_after) calls of `method` get 429 with these Retry-After seconds."""
        self.limits[method] = list(retry_after)


async def _args(request: web.Request) -> dict[str, Any]:
    """Slack takes query, form fields or JSON; the SDK sends JSON-valued fields (blocks, files) as
    strings in forms and queries."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        args.update(await request.json())
    else:
        args.update({k: str(v) for k, v in (await request.post()).items()})
    for key in ("blocks", "files", "attachments"):
        if isinstance(args.get(key), str):
            with contextlib.suppress(ValueError):
                args[key] = json.loads(args[key])
    return args


# -- what Slack sends to the app --------------------------------------------------------------------
def signed(body: str, secret: str = SIGNING_SECRET, at: float | None = None) -> dict[str, str]:
    """Headers of a request signed as Slack signs it: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")."""
    stamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def command_fields(text: str, user: str, *, channel: str = "C1", team: str = TEAM,
                   enterprise: str | None = None, trigger: str | None = None,
                   response_url: str = "") -> dict[str, str]:
    fields = {"token": "legacy", "team_id": team, "team_domain": "test", "channel_id": channel,
              "channel_name": "ops", "user_id": user, "user_name": user.lower(), "command": "/dr",
              "text": text, "api_app_id": "A1", "is_enterprise_install": "false",
              "response_url": response_url, "trigger_id": trigger or f"{uuid.uuid4().int % 10**12}.1.x"}
    if enterprise:
        fields["enterprise_id"] = enterprise
    return fields


def click_payload(action_id: str, user: str, *, message_ts: str = "1.000001", channel: str = "C1",
                  team: str = TEAM, value: str = "", action_ts: str | None = None,
                  response_url: str = "") -> dict[str, Any]:
    return {"type": "block_actions", "user": {"id": user, "team_id": team}, "api_app_id": "A1",
            "token": "legacy", "trigger_id": f"{uuid.uuid4().int % 10**12}.1.y",
            "team": {"id": team, "domain": "test"}, "enterprise": None, "is_enterprise_install": False,
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                          "is_ephemeral": False},
            "channel": {"id": channel, "name": "ops"}, "message": {"ts": message_ts, "type": "message"},
            "response_url": response_url,
            "actions": [{"action_id": action_id, "block_id": "b", "value": value, "type": "button",
                         "action_ts": action_ts or f"{time.time():.6f}"}]}


def form(fields: dict[str, str]) -> str:
    return urlencode(fields)


def click_form(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})

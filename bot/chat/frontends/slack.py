"""The Slack frontend: `/dr` and the Approve/Deny buttons in, job threads out (slack-bolt AsyncApp).

It only translates. A slash command or a click is acknowledged first (Slack gives 3 s), then becomes a
neutral Request for the core; the Reply goes back as an ephemeral message (errors, help), an answer in
the channel, or a job thread: a root message holding the status card (Block Kit, edited in place by the
relay) whose `ts` is the thread for milestone replies. Everything after the ack uses the bot token,
which never expires, so an hour-long job keeps updating; the response_url (30 minutes, five uses) is
only a fallback for ephemeral answers.

Two connection modes: Socket Mode (an `xapp-` app token; no public URL: the homelab default) and HTTP
mode (a signing secret; bolt verifies signature and timestamp, and drbot audits every request it
refused). The caller's account is `slack:<enterprise or team id>/<user id>`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.chat.core import Reply, Request
from bot.chat.frontends.base import ChatPort, Frontend, ThreadRef
from bot.chat.frontends.http_listener import listen
from bot.chat.frontends.slack_blocks import ACTION, blocks, clip, escape, fallback_text
from bot.chat.render import Card, card
from bot.config.settings import Settings
from bot.errors import ConfigError

log = logging.getLogger("drbot.slack")

COMMAND = "/dr"
PATH = "/slack/events"
API_URL = "https://slack.com/api/"
SCOPES = ("chat:write", "commands", "files:write")  # the manifest asks for exactly these
FILE_OVER = 3500  # a reply longer than this goes as a file in the thread
EPHEMERAL_MAX = 3800
WORK_AT_ONCE = 2
# Acks first: the work after an ack waits until no request came in for ACK_QUIET seconds (a burst
# is acknowledged before its work competes with the next acks), never longer than ACK_DEFER_MAX.
ACK_QUIET = 0.01
ACK_DEFER_MAX = 0.5
STALE_AFTER = 300  # seconds: Slack's (and bolt's) limit on a request's timestamp


class SlackFrontend(Frontend):
    name = "slack"
    # chat.update is Tier 3 (about 50 a minute per workspace): one edit per card every 3 s leaves
    # room for several jobs at once; a 429 beyond that waits out Retry-After in the SDK.
    throttle = 3.0

    def __init__(self, settings: Settings, *, base_url: str | None = None, throttle: float | None = None,
                 port: int | None = None, host: str | None = None, ping_interval: float = 10) -> None:
        settings.require("slack_bot_token")
        assert settings.slack_bot_token is not None
        if settings.slack_app_token:
            self.mode = "socket"
        elif settings.slack_signing_secret:
            self.mode = "http"
        else:
            raise ConfigError("Slack needs DRBOT_SLACK_APP_TOKEN (Socket Mode, no public URL) or "
                              "DRBOT_SLACK_SIGNING_SECRET (HTTP mode); see docs/slack.md")
        self.settings = settings
        if throttle is not None:
            self.throttle = throttle
        self.host = host if host is not None else settings.slack_http_host
        self.port = port if port is not None else settings.slack_http_port
        self.ping_interval = ping_interval
        base_url = base_url or settings.slack_api_url or API_URL
        retries = [AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=3)]
        self.client = AsyncWebClient(token=settings.slack_bot_token.get_secret_value(),
                                     base_url=base_url, retry_handlers=retries)
        self.bolt = self._bolt_app(base_url, retries)
        self.app: ChatPort | None = None
        self.ready = asyncio.Event()
        self._auth: AuthorizeResult | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Work after the ack runs in threads that hold the GIL for the core's Python code; a burst of
        # commands would starve the event loop and delay the next acks. A few at a time is enough.
        self._busy = asyncio.Semaphore(WORK_AT_ONCE)
        self._last_request = 0.0  # loop time of the latest request (see _after_acks)
        self._quiet: asyncio.Future[None] | None = None

    def _bolt_app(self, base_url: str, retries: list[Any]) -> AsyncApp:
        async def authorize() -> AuthorizeResult:  # a plain function: bolt passes by argument name
            return await self._authorize()

        secret = self.settings.slack_signing_secret
        bolt = AsyncApp(name="drbot", client=AsyncWebClient(base_url=base_url, retry_handlers=retries),
                        signing_secret=secret.get_secret_value() if secret else None, authorize=authorize,
                        request_verification_enabled=self.mode == "http",
                        raise_error_for_unhandled_request=True,
                        # ack, then work: bolt answers as soon as the listener returns (without
                        # this it polls for the ack every 10 ms); see _ack_then
                        process_before_response=True)
        bolt.use(self._well_formed)
        bolt.command(COMMAND)(self._ack_then(self._on_command))
        bolt.action(ACTION)(self._ack_then(self._on_decision))
        # after ACTION: all the others
        bolt.action(re.compile(r"(?s).*"))(self._ack_then(self._on_unknown_action))
        bolt.error(self._on_error)
        return bolt

    # -- connection -----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:  # type: ignore[override]
        if self.mode == "http":
            return self._listener is not None and self._listener.is_serving()
        client = self._socket.client if self._socket else None
        session = client.current_session if client else None
        return bool(client and session and not session.closed and not client.stale and not client.closed)

    async def run(self, app: ChatPort) -> None:
        self.app = app
        if self.client.session is None:  # one connection pool instead of a new session per call
            self.client.session = aiohttp.ClientSession()
        await self._authorize()  # a wrong token fails here, at start-up, with Slack's reason
        if self.mode == "socket":
            assert self.settings.slack_app_token is not None
            self._socket = AsyncSocketModeHandler(self.bolt, self.settings.slack_app_token.get_secret_value(),
                                                  web_client=self.client, ping_interval=self.ping_interval)
            await self._socket.connect_async()
        else:
            self._runner = web.AppRunner(self.web_app(), access_log=None)
            await self._runner.setup()
            self._listener, self.port = await listen(self._runner, self.host, self.port)
        log.info("slack frontend up (%s mode)", self.mode)
        self.ready.set()
        await asyncio.Event().wait()  # serve until cancelled

    def web_app(self) -> web.Application:
        """HTTP mode: Slack posts slash commands and clicks here."""
        web_app = web.Application()
        web_app.router.add_post(PATH, self._http)
        return web_app

    async def _http(self, request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        response = await self.bolt.async_dispatch(bolt_request)
        if response.status == 401:
            self._audit_refused(bolt_request.headers, request.remote or "")
        return await to_aiohttp_response(response)

    def _audit_refused(self, headers: dict[str, list[str]], remote: str) -> None:
        stamp = (headers.get("x-slack-request-timestamp") or [""])[0]
        try:
            stale = abs(time.time() - int(stamp)) > STALE_AFTER
        except ValueError:
            stale = False
        reason = "stale timestamp" if stale else "bad or missing signature"
        log.warning("slack: refused a request from %s (%s)", remote, reason)
        self._spawn(self._audit("refused-request", f"{reason} from {remote}"))

    async def close(self) -> None:
        self.ready.clear()
        if self._socket:
            await self._socket.close_async()
            self._socket = None
        if self._listener:
            self._listener.close()
            self._listener = None
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        for task in list(self._tasks):
            task.cancel()
        if self.client.session is not None:
            await self.client.session.close()
            self.client.session = None

    async def _authorize(self) -> AuthorizeResult:
        """bolt asks this before each request; auth.test runs once (at start-up), never before an ack."""
        if self._auth is None:
            try:
                auth = await self.client.auth_test()
            except SlackApiError as exc:
                raise ConfigError(f"Slack refused DRBOT_SLACK_BOT_TOKEN ({exc.response.get('error')}); "
                                  "copy the Bot User OAuth Token (xoxb-) from the app's page") from None
            self._auth = AuthorizeResult.from_auth_test_response(
                auth_test_response=auth, bot_token=self.client.token)
        return self._auth

    # -- the Frontend interface (called by the relay and BotApp) --------------------------------
    async def open_thread(self, channel: str, card: Card) -> ThreadRef:
        posted = await self.client.chat_postMessage(channel=channel, text=fallback_text(card),
                                                    blocks=blocks(card), unfurl_links=False)
        return {"channel": posted["channel"], "ts": posted["ts"], "job": card.job_id}

    async def update_card(self, thread: ThreadRef, card: Card) -> None:
        await self.client.chat_update(channel=thread["channel"], ts=thread["ts"],
                                      text=fallback_text(card), blocks=blocks(card))

    async def reply(self, thread: ThreadRef, text: str) -> None:
        await self._post(thread["channel"], text, thread_ts=thread["ts"],
                         name=f"drbot-{thread.get('job') or thread['ts']}.txt")

    async def attach(self, thread: ThreadRef, name: str, data: bytes, caption: str) -> None:
        """files_upload_v2: files.getUploadURLExternal, the upload, files.completeUploadExternal
        (Slack's current file API: files.upload was sunset on 2025-11-12, docs.slack.dev
        reference/methods/files.upload)."""
        await self.client.files_upload_v2(channel=thread["channel"], thread_ts=thread["ts"],
                                          file=data, filename=name, title=name,
                                          initial_comment=escape(clip(caption, 200)))

    async def alert(self, channel: str, text: str, thread: ThreadRef | None = None) -> ThreadRef:
        ts = await self._post(channel, text, thread_ts=thread["ts"] if thread else None,
                              name="drbot-alert.txt")
        return {"channel": channel, "ts": thread["ts"] if thread else ts}

    async def _post(self, channel: str, text: str, thread_ts: str | None, name: str) -> str:
        """A message, or for long text a file with a short message (Slack truncates long messages)."""
        if len(text) <= FILE_OVER:
            posted = await self.client.chat_postMessage(channel=channel, text=escape(text),
                                                        thread_ts=thread_ts, unfurl_links=False)
            return str(posted["ts"])
        first = text.strip().splitlines()[0] if text.strip() else "output"
        comment = f"{escape(clip(first, 200))} (full text attached: {len(text.splitlines())} lines)"
        await self.client.files_upload_v2(channel=channel, thread_ts=thread_ts, content=text,
                                          filename=name, title=name, initial_comment=comment)
        return thread_ts or ""

    # -- requests from Slack --------------------------------------------------------------------
    async def _after_acks(self) -> None:
        """Let a burst of requests be acknowledged before the work after them starts: that work
        (threads, Redis, Web API calls) shares the GIL and this loop with the next acks. One
        shared waiter, so a burst costs one wake-up per ACK_QUIET, not one per request."""
        if self._quiet is None or self._quiet.done():
            self._quiet = asyncio.ensure_future(self._until_quiet())
        await asyncio.shield(self._quiet)

    async def _until_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + ACK_DEFER_MAX
        while (quiet := loop.time() - self._last_request) < ACK_QUIET and loop.time() < give_up:
            await asyncio.sleep(ACK_QUIET - quiet)

    async def _on_command(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        try:
            await self._after_acks()
            async with self._busy:
                await self._command(body, context)
        except Exception:
            log.exception("slack: command failed after the ack")
            await self._ephemeral(body.get("channel_id"), body.get("user_id"),
                                  "internal error: drbot could not answer; an admin can find the "
                                  "details in drbot's log", body.get("response_url"))

    async def _command(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        channel, user, trigger = body.get("channel_id"), body.get("user_id"), body.get("trigger_id")
        account = _account(context)
        if not (channel and user and trigger and account):
            await self._audit("bad-input", f"slash command without "
                                    f"channel/user/trigger: team={context.team_id} user={user}")
            return
        text = f"{COMMAND} {body.get('text') or ''}".strip()
        reply = await self._submit(Request("slack", account, text, request_id=trigger, channel=channel))
        await self._answer(reply, channel, user, body.get("response_url"))

    async def _answer(self, reply: Reply, channel: str, user: str, response_url: str | None) -> None:
        if reply.job_id:
            try:
                await self._submitted_app().open_thread(self, channel, reply)
            except SlackApiError as exc:
                await self._ephemeral(channel, user, f"{reply.text}\nbut I cannot post in this channel "
                                      f"({exc.response.get('error')}): invite me with /invite @drbot. "
                                      f"Follow the job with /dr job {reply.job_id}.", response_url)
        elif reply.ephemeral or not reply.ok:
            await self._ephemeral(channel, user, reply.text, response_url)
        else:
            try:
                await self._post(channel, reply.text, None, name="drbot.txt")
            except SlackApiError:
                await self._ephemeral(channel, user, reply.text, response_url)

    async def _on_decision(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        try:
            await self._after_acks()
            async with self._busy:
                await self._decide(body, context)
        except Exception:
            log.exception("slack: button click failed after the ack")
            await self._ephemeral(context.channel_id, context.user_id, "internal error: the click was "
                                  "not handled; try /dr approve <id> or /dr deny <id>",
                                  body.get("response_url"))

    async def _decide(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        action = (body.get("actions") or [{}])[0]
        match = ACTION.match(str(action.get("action_id", "")))
        account, user = _account(context), context.user_id
        container = body.get("container") or {}
        channel = context.channel_id or container.get("channel_id")
        if not (match and account and user and channel and action.get("action_ts")):
            await self._audit("bad-input", f"button click missing fields: "
                                    f"action={action.get('action_id')!r} user={user}")
            return
        verb, job_id = match.groups()
        # The action's timestamp and the clicker identify one click: a repeated delivery is the
        # same request, and the core's atomic decision makes it count once.
        request = Request("slack", account, f"{COMMAND} {verb} {job_id}",
                          request_id=f"{action['action_ts']}:{user}", channel=channel)
        reply = await self._submit(request)
        if not reply.ok:
            await self._ephemeral(channel, user, reply.text, body.get("response_url"))
            return
        message_ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
        if message_ts:  # show the decision at once; the relay re-renders it from the record too
            rt = self._submitted_app().rt
            job = await asyncio.to_thread(rt.store.get, job_id)
            await self.update_card({"channel": channel, "ts": message_ts, "job": job_id}, card(job))

    async def _on_unknown_action(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        ids = [str(a.get("action_id")) for a in body.get("actions") or []]
        await self._audit("unknown-action", f"action ids {ids} from "
                                f"{_account(context) or 'unknown account'}")
        await self._ephemeral(context.channel_id, context.user_id, "that button is not one drbot knows "
                              "(perhaps from an older version); use /dr help", body.get("response_url"))

    async def _well_formed(self, body: dict[str, Any], next: Any) -> BoltResponse | None:  # noqa: A002
        """A click payload without its actions is answered (200) and audited, not matched. Runs
        before every ack: it waits for nothing (the audit entry is written after the answer)."""
        self._last_request = asyncio.get_running_loop().time()
        actions = body.get("actions")
        if body.get("type") == "block_actions" and not (
                isinstance(actions, list) and actions and isinstance(actions[0], dict)
                and isinstance(actions[0].get("action_id"), str)):
            self._spawn(self._audit("bad-input", "button click without actions"))  # after the answer
            return BoltResponse(status=200, body="")
        return await next()

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        if isinstance(error, BoltUnhandledRequestError):
            kind = body.get("type") or body.get("command") or "unknown"
            self._spawn(self._audit("unhandled-request", f"ignored a {kind} request"))  # no wait
        else:
            log.error("slack: error in a handler: %s", error, exc_info=error)

    # -- helpers --------------------------------------------------------------------------------
    def _submitted_app(self) -> ChatPort:
        if self.app is None:
            raise RuntimeError("SlackFrontend.run(app) has not been called")
        return self.app

    async def _submit(self, request: Request) -> Reply:
        return await self._submitted_app().submit(request)

    async def _ephemeral(self, channel: str | None, user: str | None, text: str,
                         response_url: str | None) -> None:
        """Only the caller sees it. chat.postEphemeral needs the bot in the channel; the command's
        response_url (valid for 30 minutes) covers the rest (a DM between people, say)."""
        text = escape(clip(text, EPHEMERAL_MAX))
        try:
            if not (channel and user):
                raise SlackApiError("no channel or user to answer", {"error": "missing_fields"})
            await self.client.chat_postEphemeral(channel=channel, user=user, text=text)
            return
        except SlackApiError as exc:
            if not response_url:
                log.warning("slack: could not answer %s (%s)", user, exc.response.get("error"))
                return
        try:
            await AsyncWebhookClient(response_url).send(text=text, response_type="ephemeral")
        except (SlackClientError, OSError) as exc:
            log.warning("slack: could not answer %s through response_url (%s)", user, exc)

    async def _audit(self, outcome: str, detail: str) -> None:
        if self.app is not None:
            await self.app.audit("slack", outcome, detail=detail)
        else:
            log.warning("slack: %s (%s)", outcome, detail)

    def _ack_then(self, work: Callable[[dict[str, Any], AsyncBoltContext], Awaitable[None]]
                  ) -> Callable[..., Awaitable[None]]:
        """A listener that acks and returns at once, the work left to a task of its own: the
        answer to Slack waits for no Redis, no Web API and no thread of the core. (bolt's lazy
        listeners do the same, but copy and parse the whole request again for each one: more
        work per request on the loop that acks the next ones.)"""
        async def listener(ack: Any, body: dict[str, Any], context: AsyncBoltContext) -> None:
            await ack()
            self._spawn(work(body, context))
        return listener

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _account(context: AsyncBoltContext) -> str | None:
    """Enterprise Grid user ids span the whole organisation, so the enterprise id names the account
    when there is one; otherwise the team (workspace) id does."""
    org = context.enterprise_id or context.team_id
    return f"slack:{org}/{context.user_id}" if org and context.user_id else None

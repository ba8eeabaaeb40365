"""The Discord frontend (discord.py 2.x): `/dr` slash commands, approval buttons, job threads.

It only translates. A subcommand and its options become the neutral text `/dr <command> <args>
[--flags]` for the core; a button click becomes `/dr approve <id>` or `/dr deny <id>` from the
clicker. Everything a job shows afterwards is posted and edited with the bot token, through the
channel, thread and message ids kept in the job's ThreadRef: an interaction token dies after 15
minutes, a rebuild can take an hour.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import discord
from discord import app_commands

from bot.chat.core import Reply, Request
from bot.chat.frontends.base import ChatPort, Frontend, ThreadRef
from bot.chat.frontends.discord_views import (
    CONTENT_LIMIT,
    CUSTOM_ID,
    Decision,
    clip,
    decision_view,
    embed,
    message,
)
from bot.chat.render import Card
from bot.config.settings import Settings
from bot.errors import CommandError, ConfigError
from bot.grammar import CONFIRM, DRY_RUN
from bot.registry import COMMANDS, CommandSpec

log = logging.getLogger("drbot.discord")
ACK_BUDGET = 2.0  # seconds the core may take before the interaction is deferred (Discord: 3 s)
SEEN = "discord:"  # + interaction id: the delivery key of a Discord interaction
MAX_SUBCOMMANDS = 25
MAX_CHANNELS = 512
NOT_THREADED = ("I could not post the job's status here ({why}). Give drbot View Channel, Send "
                "Messages, Create Public Threads and Send Messages in Threads in this channel; "
                "the job itself is queued: follow it with /dr job {job}")
UNKNOWN_BUTTON = ("That button is not one drbot knows (it may belong to an older message). "
                  "Use /dr approve <id> or /dr deny <id>; /dr jobs lists the jobs.")
UNREADABLE = ("drbot could not read that command: Discord may still show an older /dr (it updates "
              "within a minute). Try again, or type /dr help.")


@dataclass(frozen=True)
class Option:
    """One slash-command option, from a handler's Param (or the global --dry-run/--confirm)."""

    name: str
    help: str
    kind: type
    required: bool
    positional: bool
    complete: bool = False
    default: str | None = None

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")


def options(spec: CommandSpec, confirm: bool) -> list[Option]:
    found = [Option(p.name, p.help, bool if p.boolean else str, p.required and not p.flag,
                    not p.flag, p.complete is not None and p.complete_when is None, p.default)
             for p in spec.params]  # a conditional source cannot be offered: see complete.py
    if spec.mutating:
        found.append(Option(DRY_RUN.name, DRY_RUN.help, bool, False, False))
    if confirm:
        found.append(Option(CONFIRM.name, CONFIRM.help, str, False, False))
    return found


def word(name: str, value: str) -> str:
    """One option value as a quoted word; a leading '-' would be read as a flag, so it is refused."""
    if value.startswith("-"):
        raise CommandError(f"{name}: {value!r} cannot start with '-'; give the name itself")
    return shlex.quote(value)


def to_text(command: str, opts: list[Option], values: dict[str, Any]) -> str:
    """The neutral command text for a subcommand and its options (the core parses and checks it)."""
    words = ["/dr", command]
    positional = [o for o in opts if o.positional]
    given = [str(values[o.key]).strip() if values.get(o.key) is not None else "" for o in positional]
    last = max((i for i, v in enumerate(given) if v), default=-1)
    for opt, value in zip(positional[: last + 1], given, strict=False):
        if not value:
            if opt.default is None:
                raise CommandError(f"give <{opt.name}> too: later arguments follow it")
            value = opt.default
        words.append(word(opt.name, value))
    for opt in (o for o in opts if not o.positional):
        value = values.get(opt.key)
        if opt.kind is bool and value:
            words.append(f"--{opt.name}")
        elif opt.kind is str and value is not None and str(value).strip():
            words.append(f"--{opt.name}={shlex.quote(str(value).strip())}")
    return " ".join(words)


def account(interaction: discord.Interaction[Any]) -> str:
    return f"discord:{interaction.user.id}" if interaction.user else "discord:?"


def platform_roles(interaction: discord.Interaction[Any]) -> tuple[str, ...]:
    """The member's roles as `discord-role:<guild>/<role>`. Read from the interaction's own member
    data (`_roles`): `Member.roles` goes through the guild cache and drops ids it has not seen."""
    guild = interaction.guild_id
    if guild is None:
        return ()
    return tuple(f"discord-role:{guild}/{role}" for role in getattr(interaction.user, "_roles", ()))


class DrbotClient(discord.Client):
    """The gateway connection; it hands everything to its DiscordFrontend."""

    def __init__(self, frontend: DiscordFrontend) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channels and threads; no privileged intent is needed
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none())
        self.frontend = frontend
        self.tree = app_commands.CommandTree(self)
        self.tree.error(frontend.on_tree_error)

    async def setup_hook(self) -> None:
        await self.frontend.setup()

    async def on_ready(self) -> None:
        self.frontend.online(True)

    async def on_resumed(self) -> None:
        self.frontend.online(True)

    async def on_disconnect(self) -> None:
        self.frontend.online(False)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        await self.frontend.on_interaction(interaction)


class DiscordFrontend(Frontend):
    name = "discord"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.throttle = max(settings.throttle_seconds, 1.0)  # edits share a 5-per-5 s bucket
        self.app: ChatPort | None = None
        self.client = DrbotClient(self)
        self._online = False
        self._channels: dict[str, Any] = {}  # channel id -> the channel object of an interaction
        self._opened: dict[str, ThreadRef] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        parsers = self.client._connection.parsers  # no public hook wraps a gateway event's parser
        parsers["INTERACTION_CREATE"] = self._guarded(parsers["INTERACTION_CREATE"])

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:  # type: ignore[override]
        return self._online and not self.client.is_closed()

    def online(self, state: bool) -> None:
        if state != self._online:
            log.info("discord gateway %s", "connected" if state else "disconnected")
        self._online = state

    async def run(self, app: ChatPort) -> None:
        self.app = app
        self.settings.require("discord_token")
        assert self.settings.discord_token is not None
        try:
            await self.client.start(self.settings.discord_token.get_secret_value())
        except discord.LoginFailure:
            raise ConfigError("Discord refused DRBOT_DISCORD_TOKEN: copy the bot token again from "
                              "the Developer Portal (Bot > Reset Token)") from None
        finally:
            self.online(False)

    async def close(self) -> None:
        self.online(False)
        await self.client.close()

    async def setup(self) -> None:
        """Called once at login: persistent buttons, then /dr itself registered with Discord."""
        self.client.add_dynamic_items(Decision)
        tree = self.client.tree
        tree.add_command(self.group())
        guild = discord.Object(self.settings.discord_guild) if self.settings.discord_guild else None
        if guild:
            tree.copy_global_to(guild=guild)
        try:
            await tree.sync(guild=guild)
        except discord.HTTPException as exc:
            log.error("could not register /dr with Discord (%s %s): invite the bot with the "
                      "bot and applications.commands scopes%s", exc.status, exc.text,
                      f" to guild {guild.id}" if guild else "")

    # -- /dr as an app-command group -----------------------------------------------------------
    def group(self) -> app_commands.Group:
        group = app_commands.Group(name="dr", description="drbot: disaster-recovery runbooks")
        specs = sorted((s for s in COMMANDS.values() if not getattr(s, "system", False)),
                       key=lambda s: s.name)
        if len(specs) > MAX_SUBCOMMANDS:
            log.warning("Discord allows %d subcommands; not offered on Discord: %s",
                        MAX_SUBCOMMANDS, ", ".join(s.name for s in specs[MAX_SUBCOMMANDS:]))
        for spec in specs[:MAX_SUBCOMMANDS]:
            group.add_command(self.command(spec))
        return group

    def command(self, spec: CommandSpec) -> app_commands.Command[Any, Any, Any]:
        """A subcommand whose options are typed from the handler's declaration."""
        opts = options(spec, confirm=bool(self.app and self.app.needs_confirmation(spec.name)))

        async def callback(interaction: discord.Interaction[Any], **values: Any) -> None:
            await self.on_command(interaction, spec.name, opts, values)

        params = [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    annotation=discord.Interaction)]
        for opt in sorted(opts, key=lambda o: not o.required):
            params.append(inspect.Parameter(
                opt.key, inspect.Parameter.KEYWORD_ONLY,
                annotation=opt.kind if opt.required else Optional[opt.kind],  # noqa: UP045
                default=inspect.Parameter.empty if opt.required else None))
        fn: Any = callback
        fn.__signature__ = inspect.Signature(params)
        fn.__discord_app_commands_param_description__ = {o.key: clip(o.help, 100) for o in opts}
        fn.__discord_app_commands_param_rename__ = {o.key: o.name for o in opts if o.key != o.name}
        fn.__discord_app_commands_param_autocomplete__ = {
            o.key: self.suggester(spec.name, o.name) for o in opts if o.complete}
        return app_commands.Command(name=spec.name, description=clip(spec.summary, 100),
                                    callback=callback)

    def suggester(self, command: str, param: str) -> Callable[..., Any]:
        async def suggest(interaction: discord.Interaction[Any], current: str
                          ) -> list[app_commands.Choice[str]]:
            return await self.on_autocomplete(interaction, command, param, current)
        return suggest

    # -- interactions --------------------------------------------------------------------------
    def request(self, interaction: discord.Interaction[Any], text: str) -> Request:
        return Request("discord", account(interaction), text, request_id=str(interaction.id),
                       channel=str(interaction.channel_id or ""),
                       platform_roles=platform_roles(interaction))

    async def on_command(self, interaction: discord.Interaction[Any], command: str,
                         opts: list[Option], values: dict[str, Any]) -> None:
        try:
            text = to_text(command, opts, values)
        except CommandError as exc:
            await self.answer(interaction, str(exc), ephemeral=True)
            return
        await self.submit(interaction, text, ephemeral=False)

    async def on_decision(self, interaction: discord.Interaction[Any], verb: str, job_id: str) -> None:
        """A click on Approve/Deny: the same command as typing it, from the clicker."""
        await self.submit(interaction, f"/dr {verb} {job_id}", ephemeral=True)

    async def submit(self, interaction: discord.Interaction[Any], text: str, *,
                     ephemeral: bool) -> None:
        assert self.app is not None
        try:
            if await self.duplicate(interaction, text):
                return
            task = asyncio.ensure_future(self.app.submit(self.request(interaction, text)))
            done, _ = await asyncio.wait({task}, timeout=ACK_BUDGET)
            if not done:
                await self.defer(interaction)
            reply = await task
            if reply.job_id:
                await self.defer(interaction)  # opening the thread takes a few REST calls
                await self.answer(interaction, reply.text + await self.start_thread(interaction, reply),
                                  ephemeral=True)
            else:
                await self.answer(interaction, reply.text,
                                  ephemeral=ephemeral or reply.ephemeral or not reply.ok)
        except Exception:
            log.exception("discord interaction %s failed", interaction.id)
            await self.answer(interaction, f"internal error (reference {interaction.id}); an admin "
                                           "can find the details in drbot's log", ephemeral=True)

    async def duplicate(self, interaction: discord.Interaction[Any], text: str) -> bool:
        """A second delivery of one interaction is ignored (and audited); it decides nothing."""
        assert self.app is not None
        fresh = await self.app.first_delivery(SEEN + str(interaction.id))
        if not fresh:
            self.audit("duplicate-delivery", account(interaction), f"interaction {interaction.id}: "
                                                                   f"{text}")
        return not fresh

    async def start_thread(self, interaction: discord.Interaction[Any], reply: Reply) -> str:
        """Post the job's status card and open its thread; return where to follow it."""
        assert self.app is not None and reply.job_id
        channel = str(interaction.channel_id or "")
        if interaction.channel is not None:
            if len(self._channels) >= MAX_CHANNELS:
                self._channels.clear()
            self._channels[channel] = interaction.channel
        try:
            await self.app.open_thread(self, channel, reply)
        except discord.HTTPException as exc:
            why = f"Discord said {exc.status}: {exc.text or 'forbidden'}"
            self.audit("thread-refused", account(interaction), f"job {reply.job_id}: {why}")
            return "\n" + NOT_THREADED.format(why=why, job=reply.job_id)
        except Exception as exc:  # noqa: BLE001  (the job is queued whatever happens here)
            log.exception("opening the thread of job %s failed", reply.job_id)
            return "\n" + NOT_THREADED.format(why=type(exc).__name__, job=reply.job_id)
        ref = self._opened.pop(reply.job_id, {})
        return f"; follow it in <#{ref.get('thread') or ref.get('channel')}>" if ref else ""

    async def on_autocomplete(self, interaction: discord.Interaction[Any], command: str, param: str,
                              current: str) -> list[app_commands.Choice[str]]:
        assert self.app is not None
        try:
            found = await self.app.complete(account(interaction), platform_roles(interaction),
                                            command, param, str(current or ""))
        except Exception:  # noqa: BLE001  (no suggestions is a fine answer; the core checks anyway)
            log.exception("autocomplete for /dr %s %s failed", command, param)
            found = []
        return [app_commands.Choice(name=value[:100], value=value[:100]) for value in found]

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Every interaction passes here too; only clicks on buttons drbot does not know are ours."""
        if interaction.type is not discord.InteractionType.component:
            return
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        if re.fullmatch(CUSTOM_ID, custom_id):
            return  # the Decision template handles it
        self.audit("unknown-component", account(interaction), f"custom_id {custom_id[:100]!r}")
        await self.answer(interaction, UNKNOWN_BUTTON, ephemeral=True)

    async def on_tree_error(self, interaction: discord.Interaction[Any],
                            error: app_commands.AppCommandError) -> None:
        """Options that do not match /dr as registered, an unknown subcommand, and the like."""
        self.audit("bad-interaction", account(interaction), f"{type(error).__name__}: {error}")
        if interaction.type is discord.InteractionType.autocomplete:
            if not interaction.response.is_done():
                await interaction.response.autocomplete([])
            return
        await self.answer(interaction, UNREADABLE, ephemeral=True)

    def _guarded(self, parse: Callable[[Any], None]) -> Callable[[Any], None]:
        """A malformed INTERACTION_CREATE must not take the gateway connection down with it."""
        def parse_interaction(data: Any) -> None:
            try:
                parse(data)
            except Exception as exc:  # noqa: BLE001
                log.warning("ignored a malformed interaction (%s: %s)", type(exc).__name__, exc)
                user = ((data.get("member") or {}).get("user") or data.get("user") or {}) \
                    if isinstance(data, dict) else {}
                self.audit("malformed-interaction", f"discord:{user.get('id', '?')}",
                           f"{type(exc).__name__}: {exc}")
        return parse_interaction

    # -- answering -----------------------------------------------------------------------------
    @staticmethod
    async def defer(interaction: discord.Interaction[Any]) -> None:
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=True, thinking=True)

    async def answer(self, interaction: discord.Interaction[Any], text: str, *,
                     ephemeral: bool) -> None:
        """Through the interaction token: fine for the first minutes, which is all it is used for."""
        try:
            if interaction.response.is_done():
                await interaction.followup.send(ephemeral=ephemeral, **message(text))
            else:
                await interaction.response.send_message(ephemeral=ephemeral, **message(text))
        except discord.HTTPException as exc:
            log.warning("could not answer interaction %s: %s %s", interaction.id, exc.status,
                        exc.text)
        except Exception as exc:  # noqa: BLE001  (shutting down, or the network: nobody to tell)
            log.warning("could not answer interaction %s: %s", interaction.id, exc)

    def audit(self, outcome: str, who: str, detail: str) -> None:
        """An audit entry off the event loop (it is a Redis write)."""
        if self.app is None:
            return
        task = asyncio.ensure_future(self.app.audit("discord", outcome, account=who,
                                                    detail=detail))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the neutral Frontend: everything after the first answer goes through the bot token ---
    def _channel(self, channel_id: str) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(int(channel_id))

    async def open_thread(self, channel: str, card: Card) -> ThreadRef:
        target = self._channels.get(channel) or self._channel(channel)
        root = await target.send(embed=embed(card), view=decision_view(card))
        thread: str | None = None
        if isinstance(target, discord.TextChannel):  # threads need a guild text (or news) channel
            try:
                made = await root.create_thread(name=clip(f"{card.job_id} {card.title}", 100),
                                                auto_archive_duration=1440)
                thread = str(made.id)
            except discord.HTTPException as exc:
                log.warning("no thread for job %s (%s %s); replying in the channel", card.job_id,
                            exc.status, exc.text)
        ref = {"job": card.job_id, "channel": channel, "message": str(root.id), "thread": thread}
        self._opened[card.job_id] = ref
        return ref

    async def update_card(self, thread: ThreadRef, card: Card) -> None:
        root = self._channel(thread["channel"]).get_partial_message(int(thread["message"]))
        await root.edit(embed=embed(card), view=decision_view(card))

    async def reply(self, thread: ThreadRef, text: str) -> None:
        await self._post(thread, text, f"job-{thread.get('job', 'drbot')}.txt")

    async def attach(self, thread: ThreadRef, name: str, data: bytes, caption: str) -> None:
        """The file as an attachment of a message in the thread, the caption as its text."""
        await self._send(thread, content=caption[:CONTENT_LIMIT],
                         file=discord.File(io.BytesIO(data), filename=name))

    async def alert(self, channel: str, text: str, thread: ThreadRef | None = None) -> ThreadRef:
        if not channel.isdigit():
            raise ConfigError(f"alerts.discord is {channel!r}: it must be a channel id (enable "
                              "Developer Mode, right-click the channel, Copy Channel ID)")
        ref = thread or {"channel": channel, "message": None, "thread": None}
        sent = await self._post(ref, text, "alert.txt")
        return {"channel": ref["channel"], "message": str(sent.id), "thread": ref.get("thread")}

    async def _post(self, ref: ThreadRef, text: str, filename: str) -> discord.Message:
        return await self._send(ref, **message(text, filename))

    async def _send(self, ref: ThreadRef, **kwargs: Any) -> discord.Message:
        """Into the thread if there is one, else into the channel as a reply to the root message."""
        if ref.get("thread"):
            return await self._channel(ref["thread"]).send(**kwargs)
        reference = None
        if ref.get("message"):
            reference = discord.MessageReference(message_id=int(ref["message"]),
                                                 channel_id=int(ref["channel"]),
                                                 fail_if_not_exists=False)
        return await self._channel(ref["channel"]).send(reference=reference, **kwargs)

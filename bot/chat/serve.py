"""`drbot bot`: the chat frontends that have tokens configured, the relay and the reaper.

One replica only: the relay and the platforms' sockets are singletons.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TextIO
from urllib.parse import urlsplit

from bot.chat import health
from bot.chat.app import BotApp
from bot.chat.frontends.base import Frontend
from bot.config.settings import Settings
from bot.errors import ConfigError
from bot.runtime import Runtime, freeze_loaded

log = logging.getLogger("drbot.serve")


def frontends(settings: Settings) -> dict[str, Frontend]:
    found: dict[str, Frontend] = {}
    if settings.slack_bot_token:
        from bot.chat.frontends.slack import SlackFrontend

        found["slack"] = SlackFrontend(settings)
    if settings.discord_token:
        from bot.chat.frontends.discord import DiscordFrontend

        found["discord"] = DiscordFrontend(settings)
    if not found:
        raise ConfigError("no chat frontend configured: set DRBOT_SLACK_BOT_TOKEN (with "
                          "DRBOT_SLACK_APP_TOKEN or DRBOT_SLACK_SIGNING_SECRET) and/or "
                          "DRBOT_DISCORD_TOKEN")
    return found


async def run(settings: Settings) -> list[str]:
    """Serve until SIGTERM/SIGINT; returns why a frontend stopped on its own ([] if none did)."""
    rt = Runtime.from_settings(settings, patient=False)
    _ = rt.policy, rt.inventory  # validate the files before connecting anywhere
    app = BotApp(rt, frontends(settings))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app.start(loop)
    freeze_loaded()
    probes = await health.start(health.Health(settings, app.frontends, scrape_queue=True),
                                settings.http_host, settings.http_port) \
        if settings.http_port is not None else None
    tasks = [asyncio.create_task(f.run(app), name=f"frontend-{f.name}")
             for f in app.frontends.values()]
    waiter = asyncio.create_task(stop.wait())
    failures: list[str] = []
    try:
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter and task.exception():
                log.error("frontend stopped: %s", task.exception())
                failures.append(stopped(task.get_name().removeprefix("frontend-"),
                                        task.exception()))
    finally:
        for task in tasks:
            task.cancel()
        for frontend in app.frontends.values():
            await frontend.close()
        await asyncio.to_thread(app.stop)
        if probes:
            await probes.cleanup()
    return failures


def stopped(name: str, exc: BaseException | None) -> str:
    """One line: which frontend stopped and why (a refused token says so in its own words)."""
    if isinstance(exc, ConfigError):
        return f"the {name} frontend stopped: {exc}"
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return (f"the {name} frontend stopped: cannot reach {name} ({reason}); check this host's "
            "network path to the platform (DNS, firewall, proxy)")


def serve(settings: Settings) -> int:
    """Exit status 1 when a frontend stopped on its own: a supervisor (systemd, Kubernetes) must
    see that the bot cannot do its job, and restart it."""
    import sys

    failures = asyncio.run(run(settings))
    for line in failures:
        print(f"drbot: {line}", file=sys.stderr)
    return 1 if failures else 0


async def serve_console(settings: Settings, lines: TextIO, speak_as: str | None, echo: bool,
                        terminal: bool = False, private: bool = False) -> int:
    """`drbot console`: the console frontend hosted like the others, around one BotApp.

    ``terminal``: a person at a terminal gets the banner, prompt, history and completion;
    ``private``: the Redis is the all-in-one's own (the banner says it ends with the console)."""
    from bot.chat.frontends import console

    rt = Runtime.from_settings(settings, patient=True)
    frontend = console.ConsoleFrontend(throttle=min(settings.throttle_seconds, 0.5))
    app = BotApp(rt, {"console": frontend})
    app.start(asyncio.get_running_loop())
    greet = (lambda account: banner(rt, account, private)) if terminal else None
    try:
        return await console.run(app, frontend, lines, speak_as, echo, greet, terminal)
    finally:
        await asyncio.to_thread(app.stop)


def banner(rt: Runtime, account: str, private: bool) -> str:
    """Who you are, which Redis, which lab: what a person must know before typing a command."""
    caller = rt.policy.caller(account)
    who = (f"you are {caller.person} ({account}; roles {', '.join(sorted(caller.roles)) or 'none'})"
           if caller.person else f"{account} is not in the policy: you can run nothing")
    url = urlsplit(rt.settings.redis_url or "")
    where = f"{url.scheme}://{url.hostname}:{url.port}{url.path}"  # never the password
    redis_line = f"Redis {where}" + (" (private to this console, gone when it ends)"
                                     if private else "")
    inventory = rt.settings.inventory or "no inventory (only what needs none)"
    lab = "the simulated lab (policy lab: true)" if rt.policy.lab else "production policy"
    return "\n".join([f"drbot console: {who}", redis_line, f"{lab}; inventory {inventory}",
                      "Tab completes commands and names, Up recalls earlier ones, "
                      "/dr help <command> explains one, Ctrl-D ends."])

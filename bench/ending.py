"""How a bench always ends and leaves nothing behind.

A bench once hung for 600 s, printed nothing and left a `drbot worker` holding its output pipe,
so whoever ran it through a pipe waited on. Every bench here runs under `deadline()`: at the
deadline, on SIGTERM or Ctrl-C, `Stop` is raised in the main thread, so its `finally` blocks stop
what it started and it prints what it measured so far. Child processes start through `spawn()`:
in their own session, their output in a log file (never the bench's pipe), and with the kernel
told to kill them if the bench itself dies (PR_SET_PDEATHSIG), so even a SIGKILL of the bench
leaves no worker behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

# Run in the child before anything else: die with the parent (Linux prctl PR_SET_PDEATHSIG = 1).
_ORPHAN_GUARD = ("import ctypes, os, runpy, signal, sys; "
                 "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL); "
                 "os.getppid() == 1 and os._exit(1); "
                 "sys.argv = sys.argv[1:]; ")


class Stop(Exception):
    """The deadline passed, or the bench was told to stop."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise `Stop` in the main thread after ``seconds``, or on SIGTERM/SIGINT."""
    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stop(f"stopped by {signal.Signals(signum).name}"
                   + (f" (the {seconds:.0f}s deadline)" if signum == signal.SIGALRM else ""))

    previous = {s: signal.signal(s, stop) for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT)}
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, handler in previous.items():
            signal.signal(s, handler)


def spawn(args: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """``python <args>`` (``-m mod ...`` or ``-c code ...``) as a guarded child; output to ``log``."""
    if args[0] == "-m":
        code = _ORPHAN_GUARD + f"runpy.run_module({args[1]!r}, run_name='__main__', alter_sys=True)"
        argv = [sys.executable, "-c", code, args[1], *args[2:]]
    elif args[0] == "-c":
        code = _ORPHAN_GUARD + f"exec(compile({args[1]!r}, '<bench>', 'exec'))"
        argv = [sys.executable, "-c", code, "-c", *args[2:]]
    else:
        raise ValueError("spawn takes -m module or -c code")
    out = open(log, "ab")  # noqa: SIM115 - the child holds it; closed with the process
    try:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()


def spawn_program(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Any program (a redis-server, say) as a guarded child: the death signal survives exec."""
    code = _ORPHAN_GUARD + "os.execvp(sys.argv[0], sys.argv)"
    out = open(log, "ab")  # noqa: SIM115 - the child holds it; closed with the process
    try:
        return subprocess.Popen([sys.executable, "-c", code, *argv], cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        out.close()


def redis_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A throwaway redis-server on 127.0.0.1 (guarded like every child); (process, URL)."""
    import shutil
    import socket
    import time

    import redis

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = spawn_program([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                          "--appendonly", "no", "--dir", str(workdir)],
                         workdir / "redis.log", workdir)
    url = f"redis://127.0.0.1:{port}/0"
    client, give_up = redis.Redis.from_url(url, socket_connect_timeout=0.2), time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc, url
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > give_up:
                stop(proc)
                raise RuntimeError("redis-server did not start: " + (workdir / "redis.log")
                                   .read_text(errors="replace")[-300:]) from None
            time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the child's whole session (a worker and its work horse), SIGKILL after ``grace``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def lab_worker(lab_env: dict[str, str], tmp: Path) -> Iterator[None]:
    """A throwaway Redis and a real `drbot worker` against a lab, with this process's
    environment pointed at them (so a Runtime built here talks to the same Redis); both are
    stopped on the way out, whatever happens."""
    from lab.fakes.frontend import KEY

    root = Path(__file__).resolve().parents[1]
    redis_proc, url = redis_server(tmp)
    env = {**os.environ, **lab_env, "REDIS_URL": url, "DRBOT_SIGNING_KEY": KEY,
           "DRBOT_PLUGINS": "[]", "DRBOT_LOG_LEVEL": "WARNING", "PYTHONPATH": str(root),
           "DRBOT_REDIS_ALLOW_NO_PASSWORD": "true"}
    os.environ.update(env)
    worker = spawn(["-m", "bot.cli", "worker"], env, tmp / "worker.log", root)
    try:
        yield
    finally:
        stop(worker)
        stop(redis_proc)

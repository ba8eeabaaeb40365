"""The console as a person meets it: run in tmux on a real terminal, keys sent, the screen read.

It shows the banner, completes `/dr reb<TAB>` and a node name from the core's completer, recalls a
command typed in an earlier session (history per user), and shows no log line between the answers.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lab.fakes.frontend import KEY, POLICY
from tests.bot.test_complete import INVENTORY
from tests.support import wait_until

ROOT = Path(__file__).parents[2]
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d|\{\"|\b(INFO|WARNING|ERROR)\b")
RULES = '  rebuild-node: {allow: [admin], approvals: 1, approvers: ["role:admin"]}\n  exercise-gated:'

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (make system-packages installs it)")


class Tmux:
    def __init__(self, tmp: Path) -> None:
        self.socket = str(tmp / "tmux.sock")
        self.name = uuid.uuid4().hex[:8]

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], check=True,
                              capture_output=True, text=True).stdout

    def start(self, command: str) -> None:
        self.run("new-session", "-d", "-s", self.name, "-x", "160", "-y", "60", command)
        self.run("set-option", "-t", self.name, "remain-on-exit", "on")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name, "-S", "-200")

    def wait(self, needle: str, count: int = 1) -> str:
        return wait_until(lambda: (s := self.screen()).count(needle) >= count and s, timeout=30,
                          what=f"{needle!r} on the screen ({count}x)")

    def prompt_line(self) -> str:
        """The last prompt line (tmux drops trailing spaces: a completed word's space is gone)."""
        return [line for line in self.screen().splitlines() if line.startswith("dr>")][-1]

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)


def ended(pid: int) -> bool:
    """The process has exited: gone, or a zombie its parent (tmux) has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    session = Tmux(tmp_path)
    yield session
    session.close()


def console_command(redis_url: str, tmp: Path) -> str:
    (tmp / "policy.yaml").write_text(POLICY.replace("  exercise-gated:", RULES))
    (tmp / "inventory.yaml").write_text(INVENTORY)
    env = {"REDIS_URL": redis_url, "DRBOT_SIGNING_KEY": KEY, "DRBOT_REDIS_ALLOW_NO_PASSWORD": "true",
           "DRBOT_POLICY": str(tmp / "policy.yaml"), "DRBOT_INVENTORY": str(tmp / "inventory.yaml"),
           "XDG_STATE_HOME": str(tmp / "state"), "PYTHONPATH": str(ROOT), "TERM": "xterm",
           "PATH": os.environ["PATH"], "HOME": str(tmp)}
    argv = [sys.executable, "-m", "bot.cli", "console", "--as", "alice"]
    # env -i: none of the test run's DRBOT_LOG_* settings reach it; the terminal defaults apply
    return "env -i " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + \
        " ".join(map(shlex.quote, argv))


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own: the session's is shared with tests that leave garbage in
    drbot's keys on purpose, and the console must be judged on its own behaviour here."""
    from lab.fakes.redis import RedisServer
    from lab.servers import free_port

    (tmp_path / "redis").mkdir()
    server = RedisServer(free_port(), tmp_path / "redis")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_banner_completion_history_and_no_log_lines(tmux: Tmux, redis_url: str,
                                                    tmp_path: Path) -> None:
    command = console_command(redis_url, tmp_path)
    tmux.start(command)
    screen = tmux.wait("dr>")
    assert "drbot console: you are alice (console:alice; roles admin)" in screen
    url = urlsplit(redis_url)
    assert f"Redis redis://127.0.0.1:{url.port}{url.path}\n" in screen
    assert "the simulated lab (policy lab: true); inventory " in screen
    tmux.keys("/dr reb", "Tab")
    wait_until(lambda: tmux.prompt_line() == "dr> /dr rebuild-", what="rebuild- completed")
    tmux.keys("n", "Tab")
    wait_until(lambda: tmux.prompt_line() == "dr> /dr rebuild-node", what="the command")
    tmux.keys("k3s-a", "Tab")
    wait_until(lambda: tmux.prompt_line() == "dr> /dr rebuild-node k3s-agent-1",
               what="the node name from the inventory")
    tmux.keys("C-u", "/dr help rebuild-node", "Enter")
    tmux.wait("example: /dr rebuild-node k3s-agent-1")
    wait_until(lambda: tmux.screen().rstrip().endswith("dr>"), what="the prompt again")
    # ^D at the prompt ends the console. It is judged by the console's own process having ended
    # (a zombie of tmux, or gone): tmux 3.3 may take many seconds to mark the pane dead after
    # its process exited, which once looked like a console that had missed the ^D.
    pid = int(tmux.run("display", "-p", "-t", tmux.name, "#{pane_pid}"))
    tmux.keys("C-d")
    wait_until(lambda: ended(pid), what="the console to end at ^D")
    # A new session of the same user in the same pane (-k: tmux may still count the old one).
    tmux.run("respawn-pane", "-k", "-t", tmux.name, command)
    tmux.wait("Tab completes commands", count=1)
    wait_until(lambda: tmux.screen().rstrip().endswith("dr>"), what="the new prompt")
    tmux.keys("Up")
    wait_until(lambda: tmux.prompt_line() == "dr> /dr help rebuild-node",
               what="the earlier command recalled")
    tmux.keys("Enter")
    screen = tmux.wait("example: /dr rebuild-node k3s-agent-1")
    assert [line for line in screen.splitlines() if LOG_LINE.search(line)] == []
    history = (tmp_path / "state" / "drbot" / "history-alice").read_text()
    assert "/dr help rebuild-node" in history

"""`drbot console`: piped input, the all-in-one mode, identities, and clean exit."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

from tests.bot.harness import KEY, POLICY
from tests.support import children

ROOT = Path(__file__).parents[2]


def console(tmp_path: Path, script: str, *args: str, policy: str = POLICY,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DRBOT_")
               and k != "REDIS_URL"}
    environ.update({"DRBOT_POLICY": str(path), "DRBOT_PLUGINS": '["tests.bot.drill"]',
                    "DRBOT_LOG_LEVEL": "ERROR", "PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run([sys.executable, "-m", "bot.cli", "console", *args], input=script,
                          capture_output=True, text=True, env=environ, timeout=120, cwd=ROOT)


def test_all_in_one_session_runs_jobs_approvals_and_exits_cleanly(tmp_path: Path) -> None:
    before = set(children(os.getpid()))
    script = "\n".join([
        "/dr help",
        "@eve /dr status",
        "@carol /dr exercise-gated a --dry-run",
        "@carol /dr exercise-gated a",
        "@carol /dr approve",
        "@bob /dr approve",
        "@bob /dr jobs",
    ]) + "\n"
    done = console(tmp_path, script, "--as", "alice",
                   env={"DRBOT_THROTTLE_SECONDS": "0.1"})
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "alice> /dr help" in out and "You may run:" in out
    assert "console:eve is not on drbot's approval list" in out
    assert "Plan (dry run):" in out and "dry run: nothing was changed" in out
    assert "needs 1 approval(s)" in out
    assert "error: no job is waiting for your approval" in out  # carol requested it herself
    assert out.count("approved by bob (1/1); queued to run") == 1  # the thread's line, not the reply too
    assert "still awaiting approval" not in out
    assert set(children(os.getpid())) == before  # no redis or worker left behind


def test_as_is_refused_outside_the_lab_configuration(tmp_path: Path) -> None:
    done = console(tmp_path, "/dr help\n", "--as", "bob",
                   policy=POLICY.replace("lab: true", "lab: false"),
                   env={"REDIS_URL": "redis://127.0.0.1:1/0", "DRBOT_SIGNING_KEY": KEY})
    assert done.returncode != 0
    assert "--as works only with the lab configuration" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_at_name_lines_are_refused_outside_the_lab(tmp_path: Path) -> None:
    login = pwd.getpwuid(os.getuid()).pw_name
    policy = POLICY.replace("lab: true", "lab: false").replace(
        'accounts: ["console:dave"]', f'accounts: ["console:dave", "console:{login}"]')
    # LOGNAME and USER say alice (an admin): the console must not believe them
    done = console(tmp_path, "@bob /dr jobs\n/dr jobs\n/dr exercise id\n", policy=policy,
                   env={"USER": "alice", "LOGNAME": "alice"})
    assert done.returncode == 0, done.stderr
    assert "@name works only with the lab configuration" in done.stdout
    assert f"{login}> /dr jobs" in done.stdout and "no jobs yet" in done.stdout
    assert "alice>" not in done.stdout and "dave may not run /dr exercise" in done.stdout

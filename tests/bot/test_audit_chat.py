"""/dr audit for admins, and `drbot audit export --since` as JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bot.records.audit import STREAM
from tests.bot.harness import Harness

ROOT = Path(__file__).parents[2]


def old_entry(core: Harness, days: float) -> None:
    """An entry from `days` ago: written first, as stream ids only grow."""
    at = time.time() - days * 86400
    core.redis.xadd(STREAM, {"action": "command", "outcome": "accepted", "person": "bob",
                             "account": "console:bob", "job": "", "detail": "old",
                             "at": f"{at:.3f}"}, id=f"{int(at * 1000)}-0")


def test_audit_by_person_job_and_since_for_admins_only(core_only: Harness) -> None:
    old_entry(core_only, 2)
    core_only.say("/dr jobs", who="carol")
    job_id = core_only.say("/dr exercise a").job_id
    refused = core_only.say("/dr audit", who="carol")
    assert not refused.ok and refused.text.startswith("carol may not run /dr audit")
    everything = core_only.say("/dr audit").text.splitlines()
    assert everything[0].endswith("audit entries, oldest first:")
    assert "  bob  command accepted: old" in everything[1]
    carol = core_only.say("/dr audit carol").text.splitlines()[1:]
    assert carol and all("  carol  " in line for line in carol)
    assert any("refused-not-allowed" in line and "/dr audit" in line for line in carol)
    by_job = core_only.say(f"/dr audit {job_id}").text.splitlines()[1:]
    assert len(by_job) == 1 and "alice  command queued" in by_job[0]
    recent = core_only.say("/dr audit 1d").text
    assert ": old" not in recent and "carol" in recent
    assert core_only.say("/dr audit nobody").text == "no audit entries for nobody"
    assert "neither a duration" in core_only.say("/dr audit 2026-13-45").text


def test_audit_shows_the_newest_thirty_oldest_first(core_only: Harness) -> None:
    for i in range(40):
        core_only.rt.audit.record("test", f"n{i:02d}", person="alice")
    lines = core_only.say("/dr audit alice").text.splitlines()
    assert lines[0] == "the last 30 audit entries for alice, oldest first:"
    assert len(lines) == 31 and "test n11" in lines[1] and "test n39" in lines[29]
    assert "command accepted: '/dr audit alice'" in lines[30]  # reading the trail is audited


def export(core: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **core.env, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "bot.cli", "audit", "export", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_export_since_gives_json_lines_oldest_first(core_only: Harness) -> None:
    old_entry(core_only, 10)
    for i in range(1200):  # more than one page of the stream
        core_only.rt.audit.record("test", f"n{i}", person="alice", job="0000000a")
    done = export(core_only, "--since", "7d")
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["outcome"] for e in entries] == [f"n{i}" for i in range(1200)]
    assert entries[0]["person"] == "alice" and entries[0]["job"] == "0000000a"
    older = export(core_only, "--since", "2000-01-01")
    assert older.stdout.splitlines()[0].startswith('{"account": "console:bob"')
    bad = export(core_only, "--since", "yesterday")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().endswith("is neither a duration (30m, 24h, 7d) nor a date "
                                       "(2026-12-01 or 2026-12-01T08:00)")

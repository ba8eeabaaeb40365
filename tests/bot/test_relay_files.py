"""Files in a job's thread (the readiness picture): the relay posts the bytes a signed ``file``
event names only while they still hash to the signed digest; altered or expired bytes are never
posted, the thread is told instead. The console writes the file and prints its path."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.chat.frontends.console import ConsoleFrontend
from bot.records import files
from bot.records.events import Event
from tests.bot.harness import Harness, wait_until


def emit_file(drbot: Harness, job_id: str, data: bytes, name: str = "picture.png") -> str:
    """What the worker's StepContext.attach does (bot/worker/runner.py post_file)."""
    sha = files.put(drbot.redis, job_id, data)
    drbot.rt.events.emit(job_id, Event("file", target=name, task=sha, message="the picture"))
    return sha


def test_a_file_event_posts_its_bytes_and_altered_bytes_are_not_posted(drbot: Harness) -> None:
    drbot.redis.set("drbot:plugin:a:hold", 1)
    job_id = drbot.say("/dr exercise a").job_id
    assert job_id
    wait_until(lambda: drbot.redis.exists("drbot:plugin:a:in-two"), what="step two")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    emit_file(drbot, job_id, png)
    posted = wait_until(lambda: drbot.frontend.files.get(job_id), 20, "the file in the thread")
    assert posted == [("picture.png", png, "the picture")]

    sha = files.digest(b"the real picture")
    drbot.redis.set(files.key(job_id, sha), b"something else")  # rewritten in Redis by someone
    drbot.rt.events.emit(job_id, Event("file", target="other.png", task=sha,
                                       message="the second picture"))
    drbot.wait_reply(job_id, "the second picture (the file is no longer available)")
    drbot.redis.set("drbot:plugin:a:go", 1)
    drbot.wait_settled(job_id)
    assert drbot.frontend.files[job_id] == [("picture.png", png, "the picture")]


def test_the_console_writes_the_file_and_prints_its_path(tmp_path: Path) -> None:
    import io

    out = io.StringIO()
    console = ConsoleFrontend(out, files_dir=str(tmp_path / "files"))
    asyncio.run(console.attach({"job": "0a1b2c3d"}, "readiness-x.png", b"\x89PNG data",
                               "Backup timeline"))
    path = tmp_path / "files" / "0a1b2c3d-readiness-x.png"
    assert path.read_bytes() == b"\x89PNG data"
    assert out.getvalue() == f"[0a1b2c3d] Backup timeline: {path}\n"

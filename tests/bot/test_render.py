"""The status card says which step of how many runs and for how long; long text is cut at a word
boundary with an ellipsis, never mid-word."""

from __future__ import annotations

from adapters.progress import one_line, shorten
from bot.chat.frontends.discord_views import clip as discord_clip
from bot.chat.frontends.discord_views import embed
from bot.chat.frontends.slack_blocks import blocks
from bot.chat.frontends.slack_blocks import clip as slack_clip
from bot.chat.render import card, clock, duration
from bot.records.jobs import Job, Step

T0 = 1_800_000_000.0


def job(status: str, *steps: tuple[str, float | None, float | None]) -> Job:
    found = Job("3f9c2a1b", "restore", {"pvc": "apps/web-data"}, "alice", "console:alice",
                "console", "r1", status=status)
    for name, started, ended in steps:
        state = "done" if ended else "running" if started else "pending"
        found.steps.append(Step(name, status=state, started=started, ended=ended))
    return found


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s) for s in (0, 9.9, 59, 60, 125, 3599, 3600, 3725, -3)] == [
        "0s", "9s", "59s", "1m00s", "2m05s", "59m59s", "1h00m", "1h02m", "0s"]


def test_the_clock_names_the_running_step_of_all_and_the_time_since_the_first_began() -> None:
    running = job("running", ("restore", T0, T0 + 40), ("scale down", T0 + 40, None),
                  ("swap PVC", None, None), ("scale up", None, None))
    assert clock(running, now=T0 + 125) == "step 2/4, 2m05s"
    between = job("running", ("restore", T0, T0 + 40), ("swap PVC", None, None))
    assert clock(between, now=T0 + 41) == "step 2/2, 41s"  # the next one, not yet marked
    ended = job("succeeded", ("restore", T0, T0 + 40), ("swap PVC", T0 + 40, T0 + 250))
    assert clock(ended, now=T0 + 9999) == "took 4m10s"
    assert clock(job("awaiting_approval", ("restore", None, None))) == ""
    assert clock(job("planning")) == ""


def test_every_frontend_shows_the_clock() -> None:
    rendered = card(job("running", ("restore", T0, None), ("swap PVC", None, None)))
    assert rendered.clock.startswith("step 1/2, ")
    assert rendered.text().splitlines()[0].endswith(f": running ({rendered.clock})")
    assert rendered.line().startswith(f"[3f9c2a1b] running ({rendered.clock}) | restore")
    assert rendered.clock in blocks(rendered)[0]["text"]["text"]
    assert rendered.clock in (embed(rendered).description or "").splitlines()[0]
    done = card(job("succeeded", ("restore", T0, T0 + 7)))
    assert done.clock == "took 7s" and done.line() == "[3f9c2a1b] succeeded (took 7s)"


def test_text_is_cut_at_a_word_with_an_ellipsis() -> None:
    text = "Restoring backup backup-7f3a into apps/web-data-restored-1204-0315: 40% of 20 GiB"
    cut = shorten(text, 40)
    assert cut == "Restoring backup backup-7f3a into…" and len(cut) <= 40
    assert text.startswith(cut[:-1]) and text[len(cut) - 1] == " "
    assert shorten(text, len(text)) == text
    assert shorten("one two, three", 10) == "one two…"  # no dangling comma before the ellipsis
    url = "s3://backups/longhorn/" + "a" * 80
    assert shorten(url, 30) == url[:29] + "…"  # no word to cut at: the room is used
    assert shorten("word " + "b" * 50, 30) == "word " + "b" * 24 + "…"  # too little kept: cut
    assert one_line("a  b\nc " + "long " * 30, 24) == "a b c long long long…"
    assert discord_clip(text, 40) == "Restoring backup backup-7f3a into…"
    assert slack_clip(text, 50).endswith("\n… (truncated)") and len(slack_clip(text, 50)) <= 50
    assert slack_clip(text, 50).startswith("Restoring backup backup-7f3a")

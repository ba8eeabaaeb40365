"""The Slack frontend against the real core, Redis and worker, with a fake Slack Web API on 127.0.0.1.

Requests come in as Slack sends them: HMAC-signed form posts to the bolt app's aiohttp server (HTTP
mode) or envelopes over a local WebSocket (Socket Mode); everything drbot sends to Slack goes through
slack-sdk's AsyncWebClient to the fake, which records it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from pydantic import SecretStr

from bot.chat.app import BotApp
from bot.chat.core import Request
from bot.chat.frontends.slack import SCOPES, SlackFrontend
from bot.chat.frontends.slack_blocks import blocks
from bot.chat.render import Card
from bot.errors import ConfigError
from lab.fakes.redis import RedisServer
from lab.fakes.slack import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    Call,
    FakeSlack,
    click_form,
    click_payload,
    command_fields,
    form,
    signed,
)
from tests.bot.harness import POLICY, Harness, wait_until

ROOT = Path(__file__).parents[2]
SLACK_POLICY = POLICY.replace(
    'alice: {accounts: ["console:alice", "slack:T1/UALICE"], roles: [admin]}',
    'alice: {accounts: ["console:alice", "slack:T1/UALICE", "discord:1001"], roles: [admin]}').replace(
    'bob: {accounts: ["console:bob", "discord:2002"], roles: [admin]}',
    'bob: {accounts: ["console:bob", "discord:2002", "slack:T1/UBOB"], roles: [admin]}\n'
    '  erin: {accounts: ["slack:E1/UERIN"], roles: [viewer]}')


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


class SlackBot:
    """A drbot whose only frontend is Slack, served on the harness's event loop."""

    def __init__(self, harness: Harness, fake: FakeSlack, mode: str = "http") -> None:
        self.h, self.fake = harness, fake
        secrets = {"slack_bot_token": SecretStr(BOT_TOKEN)}
        if mode == "http":
            secrets["slack_signing_secret"] = SecretStr(SIGNING_SECRET)
        else:
            secrets["slack_app_token"] = SecretStr(APP_TOKEN)
        settings = harness.settings.model_copy(update=secrets)

        async def build() -> SlackFrontend:
            return SlackFrontend(settings, base_url=fake.api_url, throttle=0.2, port=0, host="127.0.0.1",
                                 ping_interval=1)
        self.frontend = self.call(build())
        harness.app = BotApp(harness.rt, {"slack": self.frontend})
        harness.start_relay()
        self.serving = asyncio.run_coroutine_threadsafe(self.frontend.run(harness.app), harness.loop)
        wait_until(lambda: self.frontend.ready.is_set() or self.serving.done(), 10, "the frontend to start")
        assert not self.serving.done(), self.serving.exception()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.h.loop).result(30)

    def close(self) -> None:
        self.serving.cancel()
        self.call(self.frontend.close())
        self.h.stop_relay()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.frontend.port}/slack/events"

    def post(self, body: str, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.post(self.url, data=body.encode(), headers=headers or signed(body), timeout=10)

    def command(self, text: str, user: str = "UALICE", **kw: Any) -> requests.Response:
        kw.setdefault("response_url", self.fake.response_url())
        return self.post(form(command_fields(text, user, **kw)))

    def click(self, action_id: str, user: str, **kw: Any) -> requests.Response:
        kw.setdefault("response_url", self.fake.response_url())
        return self.post(click_form(click_payload(action_id, user, **kw)))

    # -- what reached Slack ---------------------------------------------------------------------
    def root(self, job_id: str) -> Call:
        return wait_until(lambda: next((c for c in self.fake.of("chat.postMessage")
                                        if f"[{job_id}]" in c.args.get("text", "")
                                        and not c.args.get("thread_ts")), None), 20, f"job {job_id}'s root")

    def edits(self, ts: str) -> list[Call]:
        return self.fake.of("chat.update", lambda c: c.args.get("ts") == ts)

    def replies(self, ts: str) -> list[str]:
        return [c.args["text"] for c in self.fake.of("chat.postMessage",
                                                      lambda c: c.args.get("thread_ts") == ts)]

    def ephemeral(self, user: str, needle: str) -> Call:
        return wait_until(lambda: next((c for c in self.fake.of("chat.postEphemeral")
                                        if c.args.get("user") == user and needle in c.args["text"]),
                                       None), 20, f"an ephemeral {needle!r} to {user}")

    def job_of(self, user: str = "UALICE") -> str:
        """The id of the newest job a command created (from its root message)."""
        call = wait_until(lambda: next((c for c in reversed(self.fake.of("chat.postMessage"))
                                        if not c.args.get("thread_ts") and "[" in c.args.get("text", "")),
                                       None), 20, "a root message")
        return str(call.args["text"]).split("]")[0].lstrip("[")


def _harness(redis_url: str, tmp: Path, worker: bool) -> Harness:
    harness = Harness(redis_url, tmp, policy_text=SLACK_POLICY)
    if worker:
        harness.start_worker()
    return harness


@pytest.fixture
def slack(redis_url: str, tmp_path: Path, fake_slack: FakeSlack) -> Iterator[SlackBot]:
    """drbot (core, relay, a real worker) with the Slack frontend in HTTP mode."""
    harness = _harness(redis_url, tmp_path, worker=True)
    bot = SlackBot(harness, fake_slack)
    yield bot
    bot.close()
    harness.close()


@pytest.fixture
def slack_no_worker(redis_url: str, tmp_path: Path, fake_slack: FakeSlack) -> Iterator[SlackBot]:
    """For what is decided before any job runs."""
    harness = _harness(redis_url, tmp_path, worker=False)
    bot = SlackBot(harness, fake_slack)
    yield bot
    bot.close()
    harness.close()


def card_text(call: Call) -> str:
    parts = []
    for block in call.args.get("blocks", []):
        if block["type"] == "section":
            parts.append(str(block["text"]["text"]))
        elif block["type"] == "context":
            parts.extend(str(e["text"]) for e in block["elements"])
    return "\n".join(parts)


def buttons_of(call: Call) -> list[str]:
    return [e["action_id"] for b in call.args.get("blocks", []) if b["type"] == "actions"
            for e in b["elements"]]


# -- rendering and configuration ------------------------------------------------------------------
def test_card_blocks_escape_text_carry_the_job_in_buttons_and_fit_slack() -> None:
    card = Card("0a1b2c3d", "/dr exercise <!channel> by alice", "awaiting_approval",
                [f"· step {i} " + "x" * 80 for i in range(60)], latest="a <@U1> & b", approvable=True,
                decided_at=1_700_000_000)
    rendered = blocks(card)
    text = str(rendered)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "&lt;@U1&gt; &amp; b" in text
    assert all(len(b["text"]["text"]) <= 3000 for b in rendered if b["type"] == "section")
    assert "… (truncated)" in text and "<!date^1700000000^" in text
    actions = [b for b in rendered if b["type"] == "actions"][0]["elements"]
    assert [(a["action_id"], a["value"]) for a in actions] == [("drbot:approve:0a1b2c3d", "0a1b2c3d"),
                                                               ("drbot:deny:0a1b2c3d", "0a1b2c3d")]
    assert not [b for b in blocks(Card("0a1b2c3d", "t", "running")) if b["type"] == "actions"]


def test_manifest_asks_for_exactly_the_scopes_used() -> None:
    manifest = yaml.safe_load((ROOT / "deploy/slack-app-manifest.yaml").read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(SCOPES)
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/dr"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True


def test_a_bot_token_without_a_mode_is_refused_with_the_fix(redis_url: str, tmp_path: Path) -> None:
    harness = Harness(redis_url, tmp_path)
    try:
        settings = harness.settings.model_copy(update={"slack_bot_token": SecretStr(BOT_TOKEN)})
        with pytest.raises(ConfigError, match="DRBOT_SLACK_APP_TOKEN .* or DRBOT_SLACK_SIGNING_SECRET"):
            SlackFrontend(settings)
    finally:
        harness.close()


# -- a job's life in Slack ------------------------------------------------------------------------
def test_command_acks_then_root_thread_edits_and_result(slack: SlackBot) -> None:
    slack.h.redis.set("drbot:plugin:a:hold", 1)
    response = slack.command("exercise a")  # answered while the job is held: the ack never waits
    assert response.status_code == 200 and response.text == ""  # the ack: empty, so nothing echoes
    job_id = slack.job_of()
    root = slack.root(job_id)
    assert root.args["channel"] == "C1" and root.args["blocks"]
    ts = _thread_ts(slack, job_id)
    wait_until(lambda: any("waiting for go" in card_text(c) for c in slack.edits(ts)), 20, "a progress edit")
    slack.h.redis.set("drbot:plugin:a:go", 1)
    slack.h.wait_status(job_id, "succeeded")
    slack.h.wait_settled(job_id)
    final = slack.edits(ts)[-1]
    assert "succeeded" in card_text(final) and "✓ three" in card_text(final)
    assert any("drill a finished" in r for r in slack.replies(ts))
    # everything after the ack went through the bot token, never the command's response_url
    thread_calls = slack.edits(ts) + slack.fake.of("chat.postMessage")
    assert {c.token for c in thread_calls} == {BOT_TOKEN} and not slack.fake.responses
    assert len(slack.fake.of("auth.test")) == 1  # once, at start-up: never on the ack path


def test_approval_by_another_person_via_button_and_duplicate_click(slack: SlackBot) -> None:
    slack.command("exercise-gated g", user="UALICE")
    job_id = slack.job_of()
    slack.h.wait_status(job_id, "awaiting_approval")
    slack.root(job_id)
    ts = _thread_ts(slack, job_id)
    pending = wait_until(lambda: next((c for c in slack.edits(ts) if buttons_of(c)), None), 20, "buttons")
    approve = buttons_of(pending)[0]
    assert approve == f"drbot:approve:{job_id}"
    click = click_payload(approve, "UBOB", message_ts=ts, response_url=slack.fake.response_url())
    assert slack.post(click_form(click)).status_code == 200
    assert slack.post(click_form(click)).status_code == 200  # the same click delivered twice
    slack.h.wait_status(job_id, "succeeded")
    job = slack.h.job(job_id)
    assert [a.person for a in job.approvals] == ["bob"]  # one decision
    decided = wait_until(lambda: [c for c in slack.edits(ts) if "approved by bob" in card_text(c)], 10,
                         "the card to show the decision")
    assert "decided <!date^" in card_text(decided[0]) and not buttons_of(decided[-1])
    slack.h.wait_settled(job_id)
    assert "succeeded" in card_text(slack.edits(ts)[-1])


def _thread_ts(slack: SlackBot, job_id: str) -> str:
    thread = wait_until(lambda: slack.h.redis.hget(f"drbot:relay:{job_id}", "thread"), 10, "the thread")
    return str(yaml.safe_load(thread)["ts"])


def test_self_approval_refused_from_either_platform_then_denied(slack: SlackBot) -> None:
    slack.command("exercise-gated s", user="UALICE")
    job_id = slack.job_of()
    slack.h.wait_status(job_id, "awaiting_approval")
    ts = _thread_ts(slack, job_id)
    slack.click(f"drbot:approve:{job_id}", "UALICE", message_ts=ts)
    slack.ephemeral("UALICE", f"you requested job {job_id}")
    other = slack.call(slack.h.app.submit(Request("discord", "discord:1001", f"/dr approve {job_id}", "d1")))
    assert not other.ok and "you requested job" in other.text
    # and the other way round: requested from alice's Discord account, clicked from her Slack one
    request = Request("discord", "discord:1001", "/dr exercise-gated t", "d2")
    from_discord = slack.call(slack.h.app.submit(request))
    slack.h.wait_status(from_discord.job_id, "awaiting_approval")
    slack.click(f"drbot:approve:{from_discord.job_id}", "UALICE")
    slack.ephemeral("UALICE", f"you requested job {from_discord.job_id}")
    assert slack.h.job(job_id).status == "awaiting_approval" and not slack.h.job(job_id).approvals
    slack.click(f"drbot:deny:{job_id}", "UBOB", message_ts=ts)
    slack.h.wait_status(job_id, "denied")
    wait_until(lambda: any("denied by bob" in card_text(c) and not buttons_of(c) for c in slack.edits(ts)),
               10, "the card to show the denial")


def test_buttons_work_after_a_bot_restart(slack: SlackBot) -> None:
    slack.command("exercise-gated r", user="UALICE")
    job_id = slack.job_of()
    slack.h.wait_status(job_id, "awaiting_approval")
    ts = _thread_ts(slack, job_id)
    wait_until(lambda: any(buttons_of(c) for c in slack.edits(ts)), 20, "buttons")
    slack.close()  # the bot process goes away; a new one starts with nothing in memory
    again = SlackBot(slack.h, slack.fake)
    try:
        again.click(f"drbot:approve:{job_id}", "UBOB", message_ts=ts)
        again.h.wait_status(job_id, "succeeded")
        again.h.wait_settled(job_id)
        assert "succeeded" in card_text(again.edits(ts)[-1])
        assert any("drill r finished" in r for r in again.replies(ts))
    finally:
        slack.serving = again.serving
        slack.frontend = again.frontend


# -- refusals and bad input -----------------------------------------------------------------------
def test_forged_and_stale_requests_get_401_and_an_audit_entry(slack_no_worker: SlackBot) -> None:
    body = form(command_fields("exercise x", "UALICE"))
    forged = signed(body, secret="not-the-secret")
    assert slack_no_worker.post(body, forged).status_code == 401
    stale = signed(body, at=time.time() - 600)
    assert slack_no_worker.post(body, stale).status_code == 401
    unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
    assert slack_no_worker.post(body, unsigned).status_code == 401
    def refused() -> list[dict[str, str]]:
        return [e for e in slack_no_worker.h.rt.audit.tail() if e["outcome"] == "refused-request"]
    audit = wait_until(lambda: len(refused()) == 3 and refused(), 10, "three audit entries")
    details = " ".join(e["detail"] for e in audit)
    assert "stale timestamp" in details and "bad or missing signature" in details
    assert not slack_no_worker.h.rt.store.recent() and not slack_no_worker.fake.of("chat.postMessage")


def test_duplicate_delivery_of_a_command_gives_one_job(slack_no_worker: SlackBot) -> None:
    body = form(command_fields("exercise d", "UALICE", trigger="111.222.abc",
                               response_url=slack_no_worker.fake.response_url()))
    assert slack_no_worker.post(body).status_code == 200
    slack_no_worker.job_of()
    assert slack_no_worker.post(body).status_code == 200
    slack_no_worker.ephemeral("UALICE", "already submitted as job")
    assert len(slack_no_worker.h.rt.store.recent()) == 1


def test_help_and_errors_are_ephemeral_and_enterprise_ids_name_accounts(slack_no_worker: SlackBot) -> None:
    bot = slack_no_worker
    bot.command("help", user="UERIN", enterprise="E1", team="T9")
    assert "/dr status" in bot.ephemeral("UERIN", "You may run").args["text"]
    bot.command("exercise x", user="UERIN", enterprise="E1", team="T9")
    bot.ephemeral("UERIN", "erin may not run /dr exercise")
    bot.command("help", user="UNOBODY")
    bot.ephemeral("UNOBODY", "slack:T1/UNOBODY is not on drbot")
    bot.command("frobnicate", user="UALICE")
    bot.ephemeral("UALICE", "help")
    assert not bot.h.rt.store.recent() and not bot.fake.of("chat.postMessage")


def test_bad_clicks_get_a_clear_answer_or_an_audit_entry(slack_no_worker: SlackBot) -> None:
    bot = slack_no_worker
    assert bot.click("drbot:approve:0badc0de", "UBOB").status_code == 200
    bot.ephemeral("UBOB", "no job 0badc0de")
    assert bot.click("somebody:else:button", "UBOB").status_code == 200
    bot.ephemeral("UBOB", "not one drbot knows")
    assert bot.click("drbot:approve:--confirm x", "UBOB").status_code == 200  # not a job id: no command
    no_actions = click_payload("x", "UBOB")
    del no_actions["actions"]
    assert bot.post(click_form(no_actions)).status_code == 200
    outcomes = wait_until(lambda: (o := [e["outcome"] for e in bot.h.rt.audit.tail()]).count(
        "unknown-action") == 2 and "bad-input" in o and o, 10, "audit entries")
    assert outcomes.count("unknown-action") == 2


def test_redis_down_gives_queue_unavailable_inside_the_ack(slack_no_worker: SlackBot,
                                                           redis_server: RedisServer) -> None:
    redis_server.stop()
    assert slack_no_worker.command("exercise a").status_code == 200
    slack_no_worker.ephemeral("UALICE", "queue unavailable")
    redis_server.start()


def test_a_channel_without_the_bot_gets_told_how_to_fix_it(slack_no_worker: SlackBot) -> None:
    slack_no_worker.fake.not_in.add("C9")
    slack_no_worker.command("exercise n", channel="C9")
    text = wait_until(lambda: slack_no_worker.fake.responses, 10, "a response_url answer")[0]["text"]
    assert "invite me with /invite @drbot" in text and "/dr job" in text
    assert slack_no_worker.h.rt.store.recent()  # the job is not lost: it is queued and followable


# -- the Web API edges ----------------------------------------------------------------------------
def test_long_replies_go_as_a_file_in_the_thread(slack_no_worker: SlackBot) -> None:
    text = "Plan:\n" + "\n".join(f"- target {i}" for i in range(600))
    thread = {"channel": "C1", "ts": "42.000001", "job": "0a1b2c3d"}
    slack_no_worker.call(slack_no_worker.frontend.reply(thread, text))
    (start,) = slack_no_worker.fake.of("files.getUploadURLExternal")
    assert start.args["filename"] == "drbot-0a1b2c3d.txt" and int(start.args["length"]) == len(text.encode())
    assert list(slack_no_worker.fake.uploads.values()) == [text.encode()]
    (done,) = slack_no_worker.fake.of("files.completeUploadExternal")
    assert done.args["channel_id"] == "C1" and done.args["thread_ts"] == "42.000001"
    assert done.args["initial_comment"].startswith("Plan: (full text attached: 601 lines)")


def test_a_picture_is_uploaded_into_the_thread_with_slacks_file_api(slack_no_worker: SlackBot
                                                                    ) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # binary: must arrive byte for byte
    thread = {"channel": "C1", "ts": "42.000001", "job": "0a1b2c3d"}
    slack_no_worker.call(slack_no_worker.frontend.attach(thread, "readiness-x.png", png,
                                                         "Backup timeline <9 objects>"))
    (start,) = slack_no_worker.fake.of("files.getUploadURLExternal")
    assert start.args["filename"] == "readiness-x.png" and int(start.args["length"]) == len(png)
    assert list(slack_no_worker.fake.uploads.values()) == [png]
    (done,) = slack_no_worker.fake.of("files.completeUploadExternal")
    assert done.args["channel_id"] == "C1" and done.args["thread_ts"] == "42.000001"
    assert done.args["initial_comment"] == "Backup timeline &lt;9 objects&gt;"
    assert not slack_no_worker.fake.of("chat.postMessage")


def test_a_429_is_waited_out_with_retry_after(slack_no_worker: SlackBot) -> None:
    slack_no_worker.fake.rate_limit("chat.update", 1)
    thread = {"channel": "C1", "ts": "42.000001", "job": "0a1b2c3d"}
    slack_no_worker.call(slack_no_worker.frontend.update_card(thread, Card("0a1b2c3d", "t", "running")))
    first, second = slack_no_worker.fake.of("chat.update")
    assert second.at - first.at >= 0.95
    assert second.args == first.args  # the same edit, sent again once the wait was over


def test_alerts_post_to_the_channel_and_into_a_thread(slack_no_worker: SlackBot) -> None:
    ref = slack_no_worker.call(slack_no_worker.frontend.alert("CALERT", "backup <missed>"))
    again = slack_no_worker.call(slack_no_worker.frontend.alert("CALERT", "still missed", ref))
    first, second = slack_no_worker.fake.of("chat.postMessage")
    assert first.args["text"] == "backup &lt;missed&gt;" and second.args["thread_ts"] == ref["ts"]
    assert again == ref


# -- Socket Mode ----------------------------------------------------------------------------------
@pytest.fixture
def socket_bot(redis_url: str, tmp_path: Path, fake_slack: FakeSlack) -> Iterator[SlackBot]:
    harness = _harness(redis_url, tmp_path, worker=False)
    bot = SlackBot(harness, fake_slack, mode="socket")
    yield bot
    bot.close()
    harness.close()


def test_socket_mode_acks_envelopes_and_reconnects(socket_bot: SlackBot) -> None:
    fake = socket_bot.fake
    wait_until(lambda: socket_bot.frontend.connected and fake.sockets, 10, "the socket")
    assert fake.of("apps.connections.open")[0].token == APP_TOKEN
    envelope = fake.envelope("slash_commands", command_fields("help", "UALICE"))
    ack = wait_until(lambda: next((a for a in fake.acks if a[1]["envelope_id"] == envelope), None), 5,
                     "the ack")
    assert ack[0] >= fake.sent[envelope]  # how soon: bench/slack_ack.py
    socket_bot.ephemeral("UALICE", "You may run")
    click = fake.envelope("interactive", click_payload("not:ours", "UBOB"))
    wait_until(lambda: any(a[1]["envelope_id"] == click for a in fake.acks), 5, "the click's ack")
    socket_bot.ephemeral("UBOB", "not one drbot knows")
    fake.disconnect()  # Slack rotates connections: the client opens a new one
    wait_until(lambda: fake.connections == 2 and socket_bot.frontend.connected, 10, "a new connection")
    assert len(fake.of("apps.connections.open")) == 2
    socket_bot.call(socket_bot.frontend.close())
    assert not socket_bot.frontend.connected

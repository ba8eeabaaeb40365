"""The Discord frontend end to end: discord.py against the fake Discord (REST + gateway), the real
core, relay and Redis, and a real worker running the drill runbooks."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket

from bot.chat.app import BotApp
from bot.chat.complete import remember
from bot.chat.frontends.discord import DiscordFrontend
from bot.chat.render import Card
from lab.fakes.discord import CHANNEL, GUILD, FakeDiscord, discord_server, fake_discord  # noqa: F401
from tests.bot.harness import Harness, wait_until

ALICE, BOB, CAROL, DAVE, ERIN = 1001, 2002, 3003, 4004, 5005
OPS_ROLE = 600
POLICY = f"""
admin_contact: "alice (#ops)"
people:
  alice: {{accounts: ["console:alice", "slack:T1/UALICE", "discord:{ALICE}"], roles: [admin]}}
  bob: {{accounts: ["discord:{BOB}"], roles: [admin]}}
  carol: {{accounts: ["discord:{CAROL}"], roles: [operator]}}
  dave: {{accounts: ["discord:{DAVE}"], roles: [viewer]}}
  erin: {{accounts: ["discord:{ERIN}"]}}
grants:
  "discord-role:{GUILD}/{OPS_ROLE}": [admin]
commands:
  help: {{allow: [viewer, operator, admin]}}
  jobs: {{allow: [viewer, operator, admin]}}
  job: {{allow: [viewer, operator, admin]}}
  status: {{allow: [viewer, operator, admin]}}
  reconcile: {{allow: [operator, admin]}}
  cancel: {{allow: [operator, admin]}}
  approve: {{allow: [operator, admin]}}
  deny: {{allow: [operator, admin]}}
  exercise: {{allow: [operator, admin]}}
  exercise-gated: {{allow: [operator, admin], approvals: 1, approvers: ["role:admin"], expires: 1h}}
"""


class DiscordBot:
    """drbot's bot process with only the Discord frontend, on the harness's event loop."""

    def __init__(self, harness: Harness, fake: FakeDiscord) -> None:
        self.h, self.fake = harness, fake
        self.frontend: DiscordFrontend | None = None
        self.app: BotApp | None = None
        self.task: Any = None

    def run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.h.loop).result(timeout)

    def start(self) -> DiscordFrontend:
        async def make() -> DiscordFrontend:
            return DiscordFrontend(self.h.settings)
        self.frontend = self.run(make())
        self.app = BotApp(self.h.rt, {"discord": self.frontend})
        self.app.start(self.h.loop)
        self.task = asyncio.run_coroutine_threadsafe(self.frontend.run(self.app), self.h.loop)
        wait_until(lambda: self.frontend.connected, 15, "the gateway connection")
        return self.frontend

    def stop(self) -> None:
        if self.frontend:
            self.run(self.frontend.close())
            self.task.result(10)
        if self.app:
            self.app.stop()
        self.frontend = self.app = None

    # -- talking to it like Discord -------------------------------------------------------------
    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.fake.dispatch("INTERACTION_CREATE", payload)
        return payload

    def command(self, sub: str, user: int, options: dict[str, Any] | None = None,
                **kwargs: Any) -> dict[str, Any]:
        return self.send(self.fake.command(sub, user, options, **kwargs))

    def answer(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The final answer to an interaction: its message (type 4) or its first followup."""
        iid, token = payload["id"], payload["token"]

        def found() -> dict[str, Any] | None:
            for call in self.fake.made("POST", f"^/interactions/{iid}/"):
                if call.body.get("type") == 4:
                    return call.body["data"]
            followups = self.fake.made("POST", f"^/webhooks/\\d+/{token}$")
            return followups[0].body if followups else None
        return wait_until(found, 15, f"an answer to interaction {iid}")

    def job_of(self, payload: dict[str, Any]) -> str:
        return re.search(r"job ([0-9a-f]{8})", self.answer(payload)["content"]).group(1)

    def root(self, job_id: str) -> dict[str, Any]:
        return wait_until(lambda: next((m for m in self.fake.messages.values() for e in m["embeds"]
                                        if e.get("footer", {}).get("text") == f"job {job_id}"),
                                       None), 15, f"the status card of job {job_id}")

    def buttons(self, job_id: str) -> dict[str, Any]:
        return wait_until(lambda: (m := self.root(job_id))["components"] and m, 15,
                          "the approval buttons")


@pytest.fixture
def bot(redis_url: str, tmp_path: Path, fake_discord: FakeDiscord,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> Iterator[DiscordBot]:
    monkeypatch.setattr(discord.http.Route, "BASE", fake_discord.base)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake_discord.gateway))
    harness = Harness(redis_url, tmp_path, policy_text=POLICY, DRBOT_DISCORD_TOKEN="fake-token",
                      DRBOT_DISCORD_GUILD=str(GUILD), DRBOT_THROTTLE_SECONDS="0.2")
    harness.start_worker()
    found = DiscordBot(harness, fake_discord)
    found.start()
    yield found
    found.stop()
    harness.close()


def ephemeral(answer: dict[str, Any]) -> bool:
    return bool(answer.get("flags", 0) & 64)


def test_dr_is_registered_with_typed_options_for_the_guild(bot: DiscordBot) -> None:
    (group,) = bot.fake.commands[str(GUILD)]
    subs = {s["name"]: s for s in group["options"]}
    assert group["name"] == "dr" and 0 < len(subs) <= 25
    # 24 built-in commands and this test's 2 plugin commands: the last one by name is not offered
    assert {"help", "approve", "deny", "exercise", "exercise-gated", "reconcile"} <= set(subs)
    options = {o["name"]: o for o in subs["reconcile"]["options"]}
    assert options["kustomization"]["type"] == 3 and options["kustomization"]["autocomplete"]
    assert not options["kustomization"]["required"]
    assert options["with-source"]["type"] == 5 and options["dry-run"]["type"] == 5
    drill = {o["name"]: o for o in subs["exercise"]["options"]}
    assert drill["name"]["required"] and drill["name"]["type"] == 3
    assert "dry-run" not in {o["name"] for o in subs["help"].get("options", [])}


def test_a_command_gets_a_thread_whose_card_is_edited_until_the_result(bot: DiscordBot) -> None:
    payload = bot.command("exercise", CAROL, {"name": "a"})
    answer = bot.answer(payload)
    callbacks = bot.fake.made("POST", f"^/interactions/{payload['id']}/")
    assert [c.body["type"] for c in callbacks] == [5]  # deferred, then answered by a followup
    job_id = bot.job_of(payload)
    assert ephemeral(answer) and f"<#{bot.root(job_id)['id']}>" in answer["content"]
    root = bot.root(job_id)
    assert root["channel_id"] == str(CHANNEL)
    thread = int(root["id"])
    assert thread in bot.fake.threads and job_id in bot.fake.threads[thread]["name"]
    bot.h.wait_status(job_id, "succeeded")
    wait_until(lambda: any("drill a finished" in m["content"] for m in bot.fake.in_channel(thread)),
               15, "the result in the thread")
    wait_until(lambda: "succeeded" in bot.root(job_id)["embeds"][0]["description"], 15,
               "the card edited to succeeded")
    # Edited in place, never re-posted. How many edits depends on how the relay's throttle meets
    # the steps (a quick job's steps may all land in one edit), so it is at least one.
    edits = bot.fake.made("PATCH", f"^/channels/{CHANNEL}/messages/{thread}$")
    cards = [c for c in bot.fake.made("POST", f"^/channels/{CHANNEL}/messages$")
             if "/dr exercise a by carol" in str(c.body)]
    assert edits and len(cards) == 1, (edits, cards)
    assert all(not re.match(r"^/(interactions|webhooks)/", c.path)
               for c in bot.fake.calls if c.method == "PATCH")
    audit = [e for e in bot.h.rt.audit.tail(50) if e["action"] == "command"]
    assert any(e["account"] == f"discord:{CAROL}" and e["outcome"] == "queued" for e in audit)


def test_a_second_person_approves_with_the_button(bot: DiscordBot) -> None:
    job_id = bot.job_of(bot.command("exercise-gated", CAROL, {"name": "b"}))
    root = bot.buttons(job_id)
    ids = [c["custom_id"] for row in root["components"] for c in row["components"]]
    assert ids == [f"drbot:approve:{job_id}", f"drbot:deny:{job_id}"]
    for user, expected in ((BOB, [job_id]), (DAVE, [])):  # pending job ids, for approvers only
        ask = bot.command("approve", user, {"id": ""}, focused="id")
        call = wait_until(lambda a=ask: bot.fake.made("POST", f"^/interactions/{a['id']}/"), 10,
                          "the autocomplete answer")[0]
        assert [c["value"] for c in call.body["data"]["choices"]] == expected
    answer = bot.answer(bot.send(bot.fake.click(root, f"drbot:approve:{job_id}", BOB)))
    assert ephemeral(answer) and "approved by bob (1/1)" in answer["content"]
    job = bot.h.wait_status(job_id, "succeeded")
    assert [a.person for a in job.approvals] == ["bob"]
    wait_until(lambda: bot.root(job_id)["components"] == [], 15, "the buttons removed")


def test_self_approval_is_refused_from_every_account_of_the_person(bot: DiscordBot) -> None:
    job_id = bot.job_of(bot.command("exercise-gated", ALICE, {"name": "c"}))
    root = bot.buttons(job_id)
    answer = bot.answer(bot.send(bot.fake.click(root, f"drbot:approve:{job_id}", ALICE)))
    assert ephemeral(answer) and f"you requested job {job_id}" in answer["content"]
    reply = bot.h.say(f"/dr approve {job_id}", who="slack:T1/UALICE")
    assert not reply.ok and f"you requested job {job_id}" in reply.text
    job = bot.h.job(job_id)
    assert job.status == "awaiting_approval" and not job.approvals


def test_a_duplicated_delivery_makes_one_job_and_one_decision(bot: DiscordBot) -> None:
    payload = bot.command("exercise-gated", CAROL, {"name": "d"})
    bot.send(payload)
    job_id = bot.job_of(payload)
    root = bot.buttons(job_id)
    assert bot.h.rt.store.recent(10) == [job_id]
    assert len([m for m in bot.fake.in_channel(CHANNEL) if m["embeds"]]) == 1
    click = bot.fake.click(root, f"drbot:approve:{job_id}", BOB)
    bot.send(click)
    bot.send(click)
    bot.answer(click)
    bot.h.wait_status(job_id, "succeeded")
    assert len(bot.h.job(job_id).approvals) == 1
    wait_until(lambda: sum(e["outcome"] == "duplicate-delivery" for e in bot.h.rt.audit.tail(50))
               == 2, 10, "both duplicates audited")
    assert len(bot.fake.made("POST", f"^/interactions/{click['id']}/")) == 1


def test_buttons_work_after_a_bot_restart(bot: DiscordBot) -> None:
    job_id = bot.job_of(bot.command("exercise-gated", CAROL, {"name": "e"}))
    root = bot.buttons(job_id)
    sessions = bot.fake.identified
    bot.stop()
    bot.start()
    answer = bot.answer(bot.send(bot.fake.click(root, f"drbot:approve:{job_id}", BOB)))
    assert "approved by bob" in answer["content"]
    bot.h.wait_status(job_id, "succeeded")
    wait_until(lambda: "succeeded" in bot.root(job_id)["embeds"][0]["description"], 15,
               "the same card edited by the restarted bot")
    assert bot.fake.identified == sessions + 1  # a new gateway session, not the old one


def test_a_job_outliving_its_interaction_token_keeps_updating(bot: DiscordBot) -> None:
    bot.h.redis.set("drbot:plugin:f:hold", 1)
    payload = bot.command("exercise", CAROL, {"name": "f"})
    job_id = bot.job_of(payload)
    wait_until(lambda: bot.h.redis.exists("drbot:plugin:f:in-two"), 15, "the job to be running")
    bot.fake.expire_interaction_tokens()  # 15 minutes later, as far as Discord is concerned
    since = len(bot.fake.calls)
    bot.h.redis.set("drbot:plugin:f:go", 1)
    bot.h.wait_status(job_id, "succeeded")
    thread = int(bot.root(job_id)["id"])
    wait_until(lambda: any("drill f finished" in m["content"] for m in bot.fake.in_channel(thread)),
               15, "the result posted after the token died")
    wait_until(lambda: "succeeded" in bot.root(job_id)["embeds"][0]["description"], 15,
               "the card edited after the token died")
    later = bot.fake.calls[since:]
    assert later and not [c for c in later if re.match(r"^/(interactions|webhooks)/", c.path)]


def test_autocomplete_offers_only_what_the_caller_may_use(bot: DiscordBot) -> None:
    remember("kustomizations", ["flux-system/apps", "flux-system/infra", "monitoring/grafana"],
             bot.h.redis)

    def choices(user: int, prefix: str) -> list[str]:
        payload = bot.command("reconcile", user, {"kustomization": prefix}, focused="kustomization")
        call = wait_until(lambda: bot.fake.made("POST", f"^/interactions/{payload['id']}/"), 10,
                          "the autocomplete answer")[0]
        assert call.body["type"] == 8
        return [c["value"] for c in call.body["data"]["choices"]]
    assert choices(CAROL, "flux") == ["flux-system/apps", "flux-system/infra"]
    assert choices(CAROL, "graf") == ["monitoring/grafana"]
    assert choices(DAVE, "flux") == []  # dave may not reconcile
    assert choices(999, "") == []  # nobody on the list


def test_help_lists_only_what_the_caller_may_run(bot: DiscordBot) -> None:
    answer = bot.answer(bot.command("help", DAVE))
    assert ephemeral(answer)
    assert "/dr status" in answer["content"] and "/dr jobs" in answer["content"]
    assert "/dr exercise" not in answer["content"] and "/dr reconcile" not in answer["content"]


def test_a_discord_role_grants_requests_but_never_approval(bot: DiscordBot) -> None:
    payload = bot.command("exercise-gated", ERIN, {"name": "g"}, roles=(OPS_ROLE,))
    job_id = bot.job_of(payload)
    assert bot.h.job(job_id).requester == "erin"
    refused = bot.answer(bot.command("exercise", ERIN, {"name": "g"}))
    assert "may not run /dr exercise" in refused["content"]  # without the role: nothing
    other = bot.job_of(bot.command("exercise-gated", CAROL, {"name": "h"}))
    root = bot.buttons(other)
    answer = bot.answer(bot.send(bot.fake.click(root, f"drbot:approve:{other}", ERIN,
                                                roles=(OPS_ROLE,))))
    assert "erin is not an approver" in answer["content"]
    assert bot.h.job(other).status == "awaiting_approval"


def test_bad_platform_input_gets_a_clear_answer_or_an_audit_entry(bot: DiscordBot) -> None:
    job_id = bot.job_of(bot.command("exercise-gated", CAROL, {"name": "i"}))
    root = bot.buttons(job_id)
    unknown = bot.answer(bot.send(bot.fake.click(root, "someone-elses-button", BOB)))
    assert ephemeral(unknown) and "not one drbot knows" in unknown["content"]
    gone = dict(root, components=[{"type": 1, "components": [
        {"type": 2, "style": 3, "label": "Approve", "custom_id": "drbot:approve:deadbeef"}]}])
    missing = bot.answer(bot.send(bot.fake.click(gone, "drbot:approve:deadbeef", BOB)))
    assert ephemeral(missing) and "no job deadbeef" in missing["content"]
    flag = bot.answer(bot.command("exercise", CAROL, {"name": "--dry-run"}))
    assert ephemeral(flag) and "cannot start with '-'" in flag["content"]
    wrong = bot.answer(bot.command("no-such-command", CAROL))
    assert ephemeral(wrong) and "could not read that command" in wrong["content"]
    broken = bot.fake.command("exercise", CAROL, {"name": "x"})
    del broken["token"]
    bot.send(broken)
    outcomes = lambda: {e["outcome"] for e in bot.h.rt.audit.tail(50)}  # noqa: E731
    wait_until(lambda: {"unknown-component", "malformed-interaction", "bad-interaction"}
               <= outcomes(), 10, "the audit entries")
    assert bot.frontend.connected  # the malformed payload did not take the gateway down
    assert "approved by bob" in bot.answer(bot.send(bot.fake.click(
        root, f"drbot:approve:{job_id}", BOB)))["content"]


def test_in_a_dm_the_job_speaks_in_the_channel(bot: DiscordBot) -> None:
    dm = 700000000000000099
    payload = bot.command("exercise", CAROL, {"name": "j"}, guild=None, channel=dm, channel_type=1)
    job_id = bot.job_of(payload)
    root = bot.root(job_id)
    assert root["channel_id"] == str(dm) and int(root["id"]) not in bot.fake.threads
    bot.h.wait_status(job_id, "succeeded")
    wait_until(lambda: any("drill j finished" in m["content"] and
                           str(m.get("message_reference", {}).get("message_id")) == root["id"]
                           for m in bot.fake.in_channel(dm)), 15, "the result as a reply")


def test_without_permission_to_post_the_job_still_runs_and_the_user_is_told(bot: DiscordBot
                                                                            ) -> None:
    bot.fake.fail("POST", f"^/channels/{CHANNEL}/messages$", 403, 50013, "Missing Permissions")
    answer = bot.answer(bot.command("exercise", CAROL, {"name": "k"}))
    job_id = re.search(r"job ([0-9a-f]{8})", answer["content"]).group(1)
    assert "Send Messages" in answer["content"] and f"/dr job {job_id}" in answer["content"]
    bot.h.wait_status(job_id, "succeeded")


def test_long_text_is_attached_and_cards_fit_an_embed(bot: DiscordBot) -> None:
    long = "\n".join(f"line {i} " + "x" * 60 for i in range(200))
    ref = {"job": "0000abcd", "channel": str(CHANNEL), "message": None, "thread": None}
    bot.run(bot.frontend.reply(ref, long))
    (sent,) = [m for m in bot.fake.in_channel(CHANNEL) if m["attachments"]]
    assert len(sent["content"]) <= 2000 and "attached" in sent["content"]
    assert sent["attachments"][0]["filename"] == "job-0000abcd.txt"
    assert sent["attachments"][0]["content"] == long
    card = Card("0000abcd", "/dr exercise big by carol", "running", [f"step {i} " + "y" * 80
                                                                 for i in range(300)])
    bot.run(bot.frontend.open_thread(str(CHANNEL), card))
    embed = bot.root("0000abcd")["embeds"][0]
    assert len(embed["description"]) <= 4096 and "/dr job 0000abcd" in embed["description"]
    assert len(json.dumps(embed)) < 6000 + 500


def test_a_picture_is_an_attachment_in_the_thread(bot: DiscordBot) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    ref = {"job": "0000abcd", "channel": str(CHANNEL), "message": None, "thread": None}
    bot.run(bot.frontend.attach(ref, "readiness-x.png", png, "Backup timeline, 9 objects"))
    (sent,) = [m for m in bot.fake.in_channel(CHANNEL) if m["attachments"]]
    assert sent["content"] == "Backup timeline, 9 objects"
    assert sent["attachments"][0]["filename"] == "readiness-x.png"
    assert bot.fake.attached[int(sent["id"])] == {"readiness-x.png": png}


def test_connected_follows_the_gateway(bot: DiscordBot) -> None:
    bot.fake.gateway_down = True
    bot.fake.drop_connections()
    wait_until(lambda: not bot.frontend.connected, 10, "the frontend to notice")
    bot.fake.gateway_down = False
    wait_until(lambda: bot.frontend.connected, 30, "the reconnection")
    assert "/dr status" in bot.answer(bot.command("help", DAVE))["content"]


def test_alerts_go_to_the_channel_and_into_a_thread(bot: DiscordBot) -> None:
    first = bot.run(bot.frontend.alert(str(CHANNEL), "backup missed: pvc data"))
    again = bot.run(bot.frontend.alert(str(CHANNEL), "still missed", first))
    sent = bot.fake.messages[int(again["message"])]
    assert sent["content"] == "still missed"
    assert str(sent["message_reference"]["message_id"]) == first["message"]
    with pytest.raises(Exception, match="channel id"):
        bot.run(bot.frontend.alert("#ops", "x"))

"""People, roles and rules: deny by default; files validated with errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.policy import Policy
from bot.errors import ConfigError
from tests.bot.harness import POLICY, Harness


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return Policy.load(path)


def test_accounts_map_to_people_and_unknown_accounts_to_nobody(policy: Policy) -> None:
    assert policy.caller("slack:T1/UALICE").person == "alice"
    assert policy.caller("console:alice").person == "alice"
    nobody = policy.caller("slack:T1/UEVE")
    assert nobody.person is None and not policy.may_request(nobody, "help")


def test_deny_by_default(policy: Policy) -> None:
    dave = policy.caller("console:dave")
    assert policy.may_request(dave, "status")
    assert not policy.may_request(dave, "reconcile")
    assert not policy.may_request(policy.caller("console:alice"), "no-such-rule")


def test_approvers_are_people_never_platform_grants(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.replace("lab: true", 'grants: {"discord-role:1/2": [admin]}'))
    policy = Policy.load(path)
    carol = policy.caller("console:carol", ("discord-role:1/2",))
    assert policy.may_request(carol, "exercise-gated")  # the grant lets her request
    assert not policy.may_approve("carol", "exercise-gated")  # but never approve


@pytest.mark.parametrize(("text", "expected"), [
    ("people: {a: {accounts: ['slack:lower/case']}}", "people.a.accounts"),
    ("commands: {x: {allow: [a], approvals: 1}}", "needs an approvers list"),
    ("commands: {x: {allow: [a], expires: soon}}", "is not a duration"),
    ("people: {a: {accounts: ['console:a']}, b: {accounts: ['console:a']}}", "belongs to both"),
    ("commands: {x: {alow: [a]}}", "commands.x.alow"),
    ("people: [", "is not valid YAML"),
])
def test_bad_policy_files_name_file_key_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        Policy.load(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_unknown_account_is_told_who_administers_the_list(core_only: Harness) -> None:
    reply = core_only.say("/dr status", who="slack:T1/UEVE")
    assert not reply.ok and "not on drbot's approval list" in reply.text
    assert "alice (#ops)" in reply.text
    audit = core_only.rt.audit.tail()
    assert audit[0]["outcome"] == "refused-unknown-account"


def test_help_lists_only_what_the_caller_may_run(core_only: Harness) -> None:
    viewer = core_only.say("/dr help", who="dave").text
    admin = core_only.say("/dr help", who="alice").text
    assert "/dr status" in viewer and "/dr reconcile" not in viewer
    assert "/dr reconcile" in admin and "/dr exercise-gated" in admin


def test_not_allowed_is_refused_and_audited(core_only: Harness) -> None:
    reply = core_only.say("/dr reconcile", who="dave")
    assert not reply.ok and "dave may not run /dr reconcile" in reply.text
    assert core_only.rt.audit.tail()[0]["outcome"] == "refused-not-allowed"

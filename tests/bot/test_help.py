"""/dr help <command> and the wording of /dr approve when nothing is the caller's to approve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.registry import COMMANDS
from tests.bot.harness import Harness, core_with_rules
from tests.bot.test_complete import INVENTORY

RULES = """  rebuild-node: {allow: [admin], approvals: 1, approvers: ["role:admin"], expires: 30m}
  rebuild-cluster: {allow: [admin], approvals: 2, approvers: ["role:admin", "person:carol"],
                    confirm: "rebuild the whole cluster", expires: 30m}
  exercise-gated:"""


@pytest.fixture
def core(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    with core_with_rules(redis_url, tmp_path, INVENTORY, RULES) as harness:
        yield harness


def test_help_for_one_command_gives_usage_arguments_flags_policy_and_a_live_example(
        core: Harness) -> None:
    reply = core.say("/dr help rebuild-node")
    assert reply.ok, reply.text
    assert reply.text.splitlines() == [
        "/dr rebuild-node <node> [--member-gone] [--dry-run]",
        "  rebuild a dead K3s node: fence, remove, recreate its VM, rejoin",
        "arguments:",
        "  <node>  the K3s node, as named in the inventory",
        "flags:",
        "  --member-gone  a server whose Node is gone: its etcd member is gone too (checked with "
        "etcdctl member list)",
        "  --dry-run  show the plan; change nothing",
        "who may run it: admin (you may)",
        "approvals: 1 from role:admin, not the requester; they expire after 30m",
        "example: /dr rebuild-node k3s-agent-1"]


def test_rebuild_cluster_usage_and_example_carry_the_confirmation_phrase(core: Harness) -> None:
    text = core.say("/dr help rebuild-cluster").text
    assert text.startswith('/dr rebuild-cluster [--dry-run] --confirm "rebuild the whole cluster"')
    assert '  --confirm PHRASE  the confirmation phrase the policy asks for' in text
    assert "approvals: 2 from role:admin, person:carol" in text
    assert 'confirmation phrase: --confirm "rebuild the whole cluster"' in text
    assert text.endswith('example: /dr rebuild-cluster --confirm "rebuild the whole cluster"')
    listing = core.say("/dr help").text
    assert '/dr rebuild-cluster [--dry-run] --confirm "rebuild the whole cluster"' in listing
    error = core.say("/dr rebuild-cluster extra").text  # errors show the same usage
    assert error.endswith('Usage: /dr rebuild-cluster [--dry-run] --confirm '
                          '"rebuild the whole cluster"')


def test_help_says_who_may_run_it_to_someone_who_may_not(core: Harness) -> None:
    text = core.say("/dr help reconcile", who="dave").text
    assert "who may run it: operator, admin (you may not; ask alice (#ops))" in text
    assert "approvals: none; it runs once planned" in text
    assert "  [kustomization]  [namespace/]name of the Kustomization (optional)" in text
    assert "  --with-source  reconcile its Git source first" in text


def test_help_for_an_unknown_or_system_command_suggests_and_lists(core: Harness) -> None:
    reply = core.say("/dr help rebuild-nod")
    assert not reply.ok
    assert reply.text == "no command 'rebuild-nod'; did you mean rebuild-node?; /dr help lists them"
    assert core.say("/dr help backup-check").text.startswith("no command 'backup-check'")


def test_help_speaks_the_users_words_not_the_plans(core: Harness) -> None:
    assert not [s.name for s in COMMANDS.values() if "scenario" in s.summary.lower()]
    assert "scenario" not in core.say("/dr help").text.lower()


def test_bare_approve_says_why_nothing_is_yours_to_approve(drbot: Harness) -> None:
    assert drbot.say("/dr approve", who="bob").text == \
        "no job is waiting for approval; /dr jobs lists recent jobs"
    job_id = drbot.say("/dr exercise-gated a", who="alice").job_id
    drbot.wait_status(job_id, "awaiting_approval")
    own = drbot.say("/dr approve", who="alice").text
    assert own == (f"no job is waiting for your approval. job {job_id} (/dr exercise-gated a (by "
                   f"alice)) waits for role:admin: it is your own, so another approver must "
                   "approve it")
    other = drbot.say("/dr deny", who="carol").text
    assert other.endswith(f"job {job_id} (/dr exercise-gated a (by alice)) waits for role:admin: "
                          "you (carol) are not an approver of /dr exercise-gated")
    assert drbot.say("/dr approve", who="bob").ok  # the one who may still gets it

"""Autocomplete from the core: only for commands the caller may run, values from the right source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.chat.complete import LIMIT, complete, remember, values
from tests.bot.harness import Harness

INVENTORY = """
hosts: [pve1, pve2]
nodes:
  k3s-server-1: {host: pve1, vmid: 101, role: server, terraform_address: a.s1, ansible_host: s1}
  k3s-agent-1: {host: pve2, vmid: 201, role: agent, terraform_address: a.a1, ansible_host: a1}
"""


@pytest.fixture
def core(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    harness = Harness(redis_url, tmp_path, DRBOT_INVENTORY=str(inventory))
    harness.app.core  # noqa: B018  (loads the handlers and the drill plugin)
    yield harness
    harness.close()


def caller(core: Harness, name: str):  # type: ignore[no-untyped-def]
    return core.rt.policy.caller(f"console:{name}")


def test_kustomizations_come_from_what_the_worker_last_listed(core: Harness) -> None:
    remember("kustomizations", ["flux-system/apps", "flux-system/infra", "web/site"], core.redis)
    assert complete(core.rt, caller(core, "carol"), "reconcile", "kustomization", "flux") == \
        ["flux-system/apps", "flux-system/infra"]
    assert complete(core.rt, caller(core, "carol"), "reconcile", "kustomization", "SITE") == \
        ["web/site"]
    remember("kustomizations", ["flux-system/apps"], core.redis)  # a later listing replaces it
    assert complete(core.rt, caller(core, "carol"), "reconcile", "kustomization", "") == \
        ["flux-system/apps"]


def test_nothing_for_commands_the_caller_may_not_run(core: Harness) -> None:
    remember("kustomizations", ["flux-system/apps"], core.redis)
    assert complete(core.rt, caller(core, "dave"), "reconcile", "kustomization", "") == []
    assert complete(core.rt, caller(core, "mallory"), "reconcile", "kustomization", "") == []
    assert complete(core.rt, caller(core, "carol"), "no-such", "x", "") == []
    assert complete(core.rt, caller(core, "carol"), "exercise", "name", "") == []  # no source


def test_nodes_and_hosts_come_from_the_inventory(core: Harness) -> None:
    assert values(core.rt, "rebuild-node", "nodes") == ["k3s-agent-1", "k3s-server-1"]
    assert values(core.rt, "rebuild-host", "hosts") == ["pve1", "pve2"]


def test_job_ids_are_recent_jobs_the_command_can_act_on(core: Harness) -> None:
    core.start_worker()
    gated = core.say("/dr exercise-gated a", who="carol").job_id
    done = core.say("/dr exercise b", who="carol").job_id
    core.wait_status(gated, "awaiting_approval")
    core.wait_status(done, "succeeded")
    assert values(core.rt, "approve", "jobs") == [gated]
    assert values(core.rt, "cancel", "jobs") == [gated]
    assert values(core.rt, "retry", "jobs") == []
    assert set(values(core.rt, "job", "jobs")) == {gated, done}


def test_at_most_25_suggestions(core: Harness) -> None:
    remember("pvcs", [f"default/data-{i:03d}" for i in range(60)], core.redis)
    assert len(values(core.rt, "restore", "pvcs")) == 60
    remember("kustomizations", [f"flux-system/k{i:03d}" for i in range(60)], core.redis)
    found = complete(core.rt, caller(core, "carol"), "reconcile", "kustomization", "")
    assert len(found) == LIMIT and found[0] == "flux-system/k000"

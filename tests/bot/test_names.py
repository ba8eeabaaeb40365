"""Did-you-mean for live names at submit: a typo is answered at once and no job is created."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.chat.complete import complete, remember
from tests.bot.harness import Harness, core_with_rules
from tests.bot.test_complete import INVENTORY

RULES = """  restore: {allow: [admin]}
  rebuild-node: {allow: [admin]}
  rebuild-host: {allow: [admin]}
  backup-now: {allow: [admin]}
  exercise-gated:"""


@pytest.fixture
def core(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    """No worker: whatever is accepted stays a planning job, whatever is refused leaves none."""
    with core_with_rules(redis_url, tmp_path, INVENTORY, RULES) as harness:
        yield harness


def refused(core: Harness, text: str) -> str:
    before = core.rt.store.recent()
    reply = core.say(text)
    assert not reply.ok and reply.job_id is None, reply.text
    assert core.rt.store.recent() == before
    return reply.text


def test_an_unqualified_pvc_suggests_its_only_namespace(core: Harness) -> None:
    remember("pvcs", ["monitoring/grafana-data", "apps/web-data", "apps/db-data"], core.redis)
    assert refused(core, "/dr restore grafana-data") == (
        "no PVC grafana-data; did you mean monitoring/grafana-data? (PVCs as drbot last listed "
        "them, 0 min ago; /dr status lists them again)")
    assert refused(core, "/dr restore apps/web-dta --dry-run").startswith(
        "no PVC apps/web-dta; did you mean apps/web-data?")
    entry = core.rt.audit.tail(1)[0]
    assert entry["outcome"] == "refused-unknown-name" and entry["person"] == "alice"
    assert core.say("/dr restore monitoring/grafana-data").job_id


def test_a_kustomization_typo_suggests_it_as_typed_in_the_default_namespace(
        core: Harness) -> None:
    remember("kustomizations", ["flux-system/apps", "flux-system/infra", "monitoring/grafana"],
             core.redis)
    assert refused(core, "/dr reconcile aps").startswith("no Kustomization aps; did you mean apps?")
    assert refused(core, "/dr reconcile grafana").startswith(
        "no Kustomization grafana; did you mean monitoring/grafana?")
    assert refused(core, "/dr reconcile zzz").startswith("no Kustomization zzz (")
    for fine in ("/dr reconcile apps", "/dr reconcile monitoring/grafana", "/dr reconcile"):
        assert core.say(fine).job_id, fine  # the default is never second-guessed


def test_without_a_listing_nothing_is_refused(core: Harness) -> None:
    assert core.say("/dr restore x/never-listed").job_id
    remember("pvcs", [], core.redis)  # a listing that found none is a listing
    assert refused(core, "/dr restore x/other").startswith("no PVC x/other (PVCs as drbot")


def test_nodes_and_hosts_are_checked_against_the_inventory(core: Harness) -> None:
    assert refused(core, "/dr rebuild-node k3s-agent-2") == (
        "no node k3s-agent-2 in the inventory; did you mean k3s-agent-1? "
        "(it lists: k3s-agent-1, k3s-server-1)")
    assert refused(core, "/dr rebuild-host pve3").startswith(
        "no Proxmox host pve3 in the inventory; did you mean pve1 or pve2?")
    assert core.say("/dr rebuild-node k3s-agent-1").job_id


def test_the_same_name_in_several_namespaces_names_them_all(core: Harness) -> None:
    remember("pvcs", ["apps/data", "monitoring/data", "web/database"], core.redis)
    assert refused(core, "/dr restore data").startswith(
        "no PVC data; did you mean apps/data or monitoring/data? (")


def test_a_cnpg_cluster_typo_is_answered_at_submit(core: Harness) -> None:
    """backup-now takes a CNPG cluster as namespace/name or a unique name, as status listed
    them; the name of a Longhorn volume is not checked against the clusters."""
    remember("cnpg", ["db/pg-main", "apps/pg-apps", "apps/shared", "db/shared"], core.redis)
    assert refused(core, "/dr backup-now cnpg pg-mian") == (
        "no CloudNativePG cluster pg-mian; did you mean db/pg-main? (CloudNativePG clusters as "
        "drbot last listed them, 0 min ago; /dr status lists them again)")
    assert refused(core, "/dr backup-now cnpg apps/pg-main").startswith(
        "no CloudNativePG cluster apps/pg-main; did you mean db/pg-main?")
    assert refused(core, "/dr backup-now cnpg shared").startswith(  # two namespaces: ambiguous
        "no CloudNativePG cluster shared; did you mean apps/shared or db/shared?")
    for fine in ("/dr backup-now cnpg pg-main", "/dr backup-now cnpg db/pg-main",
                 "/dr backup-now longhorn pg-mian"):
        assert core.say(fine).job_id, fine
    # suggestions cannot know the kind typed before: none, rather than clusters for a volume
    alice = core.rt.policy.caller("console:alice", ())
    assert complete(core.rt, alice, "backup-now", "name", "pg") == []

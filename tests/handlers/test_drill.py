"""The drill's refusals and verdicts without a worker: Longhorn's own room test against a
Kubernetes emulator, a node for the pod, what a check's output means, and the rotation's pick."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from adapters.kubernetes import drills
from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from bot.config.inventory import DrillCheck, Inventory
from bot.errors import CommandError
from handlers import drill
from lab.fakes.kube import StandaloneKube, add_lh_node, add_node, set_lh_disk

GIB = 1 << 30


def test_longhorn_room_follows_its_replica_scheduler(kube_emulator: StandaloneKube,
                                                     kube: Kube) -> None:
    for name in ("a", "b", "c", "d", "e"):
        add_lh_node(kube_emulator, name)
    set_lh_disk(kube_emulator, "a", maximum=100 * GIB, available=60 * GIB)  # fits 5 GiB
    set_lh_disk(kube_emulator, "b", maximum=100 * GIB, available=29 * GIB)  # 24 GiB left < 25 %
    set_lh_disk(kube_emulator, "c", maximum=100 * GIB, available=90 * GIB, scheduled=96 * GIB)  # over
    set_lh_disk(kube_emulator, "d", maximum=100 * GIB, available=90 * GIB, allow=False)
    set_lh_disk(kube_emulator, "e", maximum=100 * GIB, available=90 * GIB, reserved=98 * GIB)
    assert drills.nodes_with_room(kube, 5 * GIB) == ["a"]
    # the over-provisioning setting raises what may be scheduled
    kube_emulator.create(R.LH_SETTINGS, {"metadata": {
        "name": "storage-over-provisioning-percentage", "namespace": R.LONGHORN_NAMESPACE},
        "value": "200"})
    assert drills.nodes_with_room(kube, 5 * GIB) == ["a", "c"]


def test_the_drill_is_refused_without_room_or_a_node_for_its_pod(
        kube_emulator: StandaloneKube, kube: Kube) -> None:
    inventory = Inventory()
    add_lh_node(kube_emulator, "a")
    set_lh_disk(kube_emulator, "a", maximum=100 * GIB, available=60 * GIB)
    add_node(kube_emulator, "a", unschedulable=True)
    add_node(kube_emulator, "b", ready=False)
    with pytest.raises(CommandError, match="no node can run the drill's pod"):
        drill.room(kube, inventory, 5 * GIB)
    with pytest.raises(CommandError, match=r"lacks schedulable storage for the drill: a 50.0 GiB "
                       r"replica fits on 0 node\(s\) \(none\), 1 needed"):
        drill.room(kube, inventory, 50 * GIB)
    add_node(kube_emulator, "c")
    drill.room(kube, inventory, 5 * GIB)  # a Ready, schedulable node: allowed


def test_a_check_passes_only_on_exit_zero_and_the_expected_output() -> None:
    default = drill.default_check("/drill")
    assert default.command[-1] == "/drill"  # the path is an argument, never in the script
    ok = drill.evaluate(default, 0, "4\n49163\n")
    assert ok.ok and ok.text == "4 files, 49163 bytes read"
    assert not drill.evaluate(default, 1, "cat: can't open '/drill/x': I/O error\n").ok
    assert not drill.evaluate(default, 0, "garbage\n").ok
    check = DrillCheck(name="version", command=["cat", "/drill/VERSION"], expect="v2")
    assert drill.evaluate(check, 0, "v2\n").ok
    wrong = drill.evaluate(check, 0, "v1\n")
    assert not wrong.ok and wrong.text == "expected 'v2', got 'v1'"
    assert not drill.evaluate(check, 2, "v2\n").ok
    assert drill.evaluate(DrillCheck(name="any", command=["true"]), 0, "").ok


def test_the_rotation_drills_the_never_drilled_then_the_oldest_when_due() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    day = 86400.0

    def rec(age_days: float, ok: bool = True) -> SimpleNamespace:
        return SimpleNamespace(drilled_at=now.timestamp() - age_days * day, ok=ok)

    found = ["apps/a", "apps/b", "apps/c"]
    assert drill.due(found, {"longhorn:apps/a": rec(8), "longhorn:apps/b": rec(9)}, 7, now) \
        == "apps/c"  # never drilled comes first
    records = {"longhorn:apps/a": rec(8), "longhorn:apps/b": rec(9), "longhorn:apps/c": rec(1)}
    assert drill.due(found, records, 7, now) == "apps/b"  # then the oldest drill
    records = {"longhorn:apps/a": rec(3), "longhorn:apps/b": rec(3), "longhorn:apps/c": rec(1)}
    assert drill.due(found, records, 7, now) is None  # none is due
    records["longhorn:apps/c"] = rec(2, ok=False)  # a failed drill is tried again sooner
    assert drill.due(found, records, 7, now) == "apps/c"
    assert drill.due(found, {}, 0, now) is None  # no rotation configured

"""/dr restore's room check, by Longhorn's replica scheduler rule (as the drills use it): no node
with room refuses the restore before anything is created; room on fewer nodes than the volume
keeps replicas on is a note in the plan, since a degraded copy of the data beats none."""

from __future__ import annotations

import pytest

from adapters.kubernetes.client import Kube
from bot.errors import CommandError
from handlers import restore
from lab.fakes.kube import StandaloneKube, add_lh_node, set_lh_disk

GIB = 1 << 30


def nodes(server: StandaloneKube, free_gib: tuple[int, ...]) -> None:
    for index, free in enumerate(free_gib):
        add_lh_node(server, f"n{index}")
        set_lh_disk(server, f"n{index}", maximum=100 * GIB, available=free * GIB)


def test_room_on_every_node_needs_no_note(kube_emulator: StandaloneKube, kube: Kube) -> None:
    nodes(kube_emulator, (60, 60, 60))
    assert restore.room(kube, 10 * GIB, 3) == []


def test_room_on_fewer_nodes_than_replicas_is_a_note(kube_emulator: StandaloneKube,
                                                     kube: Kube) -> None:
    nodes(kube_emulator, (60, 30, 20))  # 30 - 10 GiB leaves 20 GiB, under Longhorn's 25 %
    assert restore.room(kube, 10 * GIB, 3) == [
        "Longhorn has room for a 10.0 GiB replica on 1 of the 3 nodes the volume keeps replicas "
        "on (n0): it stays degraded until space is freed"]
    assert restore.room(kube, 10 * GIB, 1) == []


def test_no_room_anywhere_refuses(kube_emulator: StandaloneKube, kube: Kube) -> None:
    nodes(kube_emulator, (60, 60))
    with pytest.raises(CommandError, match=r"Longhorn has no room for a 50\.0 GiB replica of the "
                       r"restored volume on any Ready, schedulable node; free space"):
        restore.room(kube, 50 * GIB, 2)

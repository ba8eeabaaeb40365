"""The drills (`/dr drill longhorn`, `/dr drill cnpg`) and `/dr verify`, with the worker SIGKILLed
right after each externally visible effect (a drill's namespace, restored Volume, PV, claim,
check pods, recovery Cluster and their deletion; a verification's reads of the store), then
retried on a new worker. After the retry: nothing is left behind (no drill namespace, PV or
restored volume, no recovery Cluster, no verification scratch), the verdict is the right one (the
lab's backups are sound: passed, restorable), no lock is left and the thread tells of both
attempts. None runs in `make test`: tests/e2e/test_drill.py kills a drill's worker and retries."""

from __future__ import annotations

import pytest

from lab import Lab, world
from lab.world import LONGHORN_NS
from tests.bot.harness import Harness
from tests.chaos.effects import Effect, killed_then_retried, recording
from tests.chaos.test_rebuild_node import held_locks
from tests.e2e.test_drill_cnpg import cnpg_leftovers

LH = f"/apis/longhorn.io/v1beta2/namespaces/{LONGHORN_NS}"
DRILL_NS = "/api/v1/namespaces/drbot-drill-[^/]+"

LONGHORN = [
    Effect("drill namespace created", "POST", "^/api/v1/namespaces$"),
    Effect("restore Volume created", "POST", f"^{LH}/volumes$"),
    Effect("PV created", "POST", "^/api/v1/persistentvolumes$"),
    Effect("PVC created", "POST", f"^{DRILL_NS}/persistentvolumeclaims$"),
    Effect("first check pod created", "POST", f"^{DRILL_NS}/pods$"),
    Effect("second check pod created", "POST", f"^{DRILL_NS}/pods$", nth=2),
    Effect("drill namespace deleted", "DELETE", f"^{DRILL_NS}$"),
    Effect("PV deleted", "DELETE", "^/api/v1/persistentvolumes/drbot-drill-"),
    Effect("restored Volume deleted", "DELETE", f"^{LH}/volumes/drbot-drill-"),
]
CNPG = [
    Effect("drill namespace created", "POST", "^/api/v1/namespaces$"),
    Effect("store Secret created", "POST", f"^{DRILL_NS}/secrets$"),
    Effect("recovery Cluster created", "POST",
           "^/apis/postgresql.cnpg.io/v1/namespaces/drbot-drill-[^/]+/clusters$"),
    Effect("drill namespace deleted", "DELETE", f"^{DRILL_NS}$"),
]
BLOCKS = f"^/{world.BUCKETS['longhorn']}/backupstore/volumes/.+/blocks/"
VERIFY = [
    Effect("first block read", "GET", BLOCKS, api="s3"),
    Effect("tenth block read", "GET", BLOCKS, api="s3", nth=10),
]


def final_reply(drbot: Harness, job_id: str, verdict: str) -> str:
    job = drbot.job(job_id)
    assert job.status == "succeeded", job.error
    assert held_locks(drbot) == []
    drbot.wait_settled(job_id)
    final = drbot.frontend.replies(job_id)[-1]
    assert verdict in final and "(in 2 attempts)" in final, final
    return final


@pytest.mark.parametrize("effect", LONGHORN, ids=str)
def test_longhorn_drill_killed_after_an_effect_then_retried(
        drbot_lab: Harness, lab: Lab, effect: Effect) -> None:
    job_id, held = killed_then_retried(drbot_lab, lab, effect,
                                       "/dr drill longhorn apps/web-data")
    with recording("drill longhorn", effect, held):
        final_reply(drbot_lab, job_id, "drill passed")
        assert cnpg_leftovers(lab) == []  # no namespace, PV or restored volume


@pytest.mark.parametrize("effect", CNPG, ids=str)
def test_cnpg_drill_killed_after_an_effect_then_retried(
        drbot_lab: Harness, lab: Lab, effect: Effect) -> None:
    job_id, held = killed_then_retried(drbot_lab, lab, effect, "/dr drill cnpg databases/pg-main")
    with recording("drill cnpg", effect, held):
        final_reply(drbot_lab, job_id, "drill passed")
        assert cnpg_leftovers(lab) == []  # no namespace, Cluster, Secret or pod


@pytest.mark.parametrize("effect", VERIFY, ids=str)
def test_verify_killed_after_an_effect_then_retried(
        drbot_lab: Harness, lab: Lab, effect: Effect) -> None:
    job_id, held = killed_then_retried(drbot_lab, lab, effect,
                                       "/dr verify longhorn apps/web-data --deep")
    with recording("verify", effect, held):
        final = final_reply(drbot_lab, job_id, "restorable")
        assert "ext4 filesystem clean" in final
        assert lab.paths is not None
        scratch = lab.paths.root / "verify-scratch"
        assert not scratch.exists() or list(scratch.iterdir()) == []

"""rebuild-cluster with the worker SIGKILLed right after one externally visible effect in each of
its four phases, then retried on a new worker (approved again, the later phases confirmed as
they come). After the retry: every VM destroyed once and created once, all running; the six
stored volumes restored once each (never a second restore volume); the application
Kustomizations suspended until phase 4 and resumed by it; no lock left; the thread tells what
the whole job did."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from lab import Lab, world
from lab.world import LONGHORN_NS
from tests.bot.harness import Harness
from tests.chaos.effects import RUN, Effect, kill_during, recording
from tests.chaos.test_rebuild_node import held_locks
from tests.chaos.test_restore import restored_volumes
from tests.e2e.test_rebuild_cluster import PHRASE, standalone, suspended, waiting_for
from tests.e2e.test_rebuild_node import requests_to

# A generous deadline for the whole case (the project's default is 300 s): four phases, a
# killed worker and a retry on a loaded two-core machine. Each wait inside ends on its condition.
pytestmark = pytest.mark.timeout(1200)
LH = f"/apis/longhorn.io/v1beta2/namespaces/{LONGHORN_NS}"
APPS = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps$"
# (phase, effect): the phase in which the effect happens
EFFECTS = [
    (1, Effect("phase 1: first VM destroyed", "DELETE", r"/qemu/\d+", api="pve")),
    (1, Effect("phase 1: first VM created", "POST", r"/qemu$", api="pve")),
    (2, Effect("phase 2: apps suspended", "PATCH", APPS)),
    (3, Effect("phase 3: first restore Volume created", "POST", f"^{LH}/volumes$")),
    (4, Effect("phase 4: apps resumed", "PATCH", APPS, nth=2)),
]


def confirmed(drbot: Harness, job_id: str, phases: Iterable[int]) -> None:
    for phase in phases:
        try:
            waiting_for(drbot, job_id, phase)
        except AssertionError as exc:  # say where the job is instead
            job = drbot.job(job_id)
            where = ", ".join(f"{s.name}: {s.status}" for s in job.steps if s.status != "done")
            raise AssertionError(f"{exc}; job {job.status}, steps {where}") from None
        reply = drbot.say(f"/dr confirm {job_id} {phase}", who="alice")
        assert reply.ok, reply.text


def approved(drbot: Harness, job_id: str) -> None:
    drbot.wait_status(job_id, "awaiting_approval", timeout=RUN)
    assert drbot.say(f"/dr approve {job_id}", who="bob").ok
    assert drbot.say(f"/dr approve {job_id}", who="carol").ok


@pytest.mark.parametrize(("phase", "effect"), EFFECTS, ids=[str(e) for _, e in EFFECTS])
def test_rebuild_cluster_killed_in_a_phase_then_retried(drbot_lab: Harness, lab: Lab,
                                                       phase: int, effect: Effect) -> None:
    standalone(lab)
    vms = len(world.NODES)

    def started() -> str:
        job_id = drbot_lab.say(f"/dr rebuild-cluster {PHRASE}", who="alice").job_id
        assert job_id
        approved(drbot_lab, job_id)
        confirmed(drbot_lab, job_id, range(1, phase + 1))
        return job_id
    job_id, held = kill_during(drbot_lab, lab, effect, started)
    drbot_lab.start_worker()
    assert drbot_lab.say(f"/dr retry {job_id}", who="alice").ok
    approved(drbot_lab, job_id)
    confirmed(drbot_lab, job_id, range(phase + 1, 5))
    job = drbot_lab.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=RUN)
    with recording("rebuild-cluster", effect, held):
        assert job.status == "succeeded", job.error
        assert requests_to(lab, "POST", "/qemu") == vms  # each VM created once
        assert sum(1 for m, p, _ in lab.world.pve_requests()
                   if m == "DELETE" and "/qemu/" in p) == vms  # and destroyed once
        assert all(vm.exists and vm.status == "running" for vm in lab.world.vms().values())
        assert len(restored_volumes(lab)) == 6  # one restore volume per stored volume
        assert suspended(lab) == {"flux-system": False, "infrastructure": False, "apps": False,
                                  "experiments": True}
        assert "6 volume(s) restored" in (job.summary or "")
        assert held_locks(drbot_lab) == []
        drbot_lab.wait_settled(job_id, timeout=RUN)
        assert "(in 2 attempts)" in drbot_lab.frontend.replies(job_id)[-1]

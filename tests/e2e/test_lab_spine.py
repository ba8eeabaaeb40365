"""The spine against the simulated homelab: status and reconcile through a real worker."""

from __future__ import annotations

from lab import Lab
from tests.bot.harness import Harness


def test_status_shows_the_seeded_cluster(drbot_lab: Harness) -> None:
    job_id = drbot_lab.say("/dr status", who="carol").job_id
    drbot_lab.wait_status(job_id, "succeeded")
    drbot_lab.wait_settled(job_id)
    text = drbot_lab.frontend.replies(job_id)[-1]
    for node in ("k3s-server-1", "k3s-server-2", "k3s-server-3", "k3s-agent-1", "k3s-agent-2"):
        assert node in text
    assert "flux-system/flux-system" in text


def test_reconcile_against_the_lab_flux(drbot_lab: Harness, lab: Lab) -> None:
    job_id = drbot_lab.say("/dr reconcile flux-system --with-source", who="carol").job_id
    drbot_lab.wait_status(job_id, "succeeded", timeout=60)
    drbot_lab.wait_settled(job_id)
    assert "is Ready" in drbot_lab.frontend.replies(job_id)[-1]
    patched = [r for r in lab.world.kube_requests() if r.method == "PATCH"]
    assert any("gitrepositories" in r.path for r in patched)
    assert any("kustomizations/flux-system" in r.path for r in patched)

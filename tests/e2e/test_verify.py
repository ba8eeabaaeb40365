"""/dr verify from chat against the simulated homelab, whose Longhorn backups are real ext4 blocks
(lab/longhorn_blocks.py): one volume verifies with its filesystem checked, the archive volume's
store copy lost a block and the thread names it."""

from __future__ import annotations

from tests.bot.harness import Harness


def test_verify_passes_for_a_sound_volume_and_names_the_lost_block(drbot_lab: Harness) -> None:
    good = drbot_lab.say("/dr verify longhorn apps/web-data --deep", who="alice").job_id
    assert good
    drbot_lab.wait_status(good, "succeeded", timeout=120)
    text = drbot_lab.wait_reply(good, "restorable", timeout=30)
    assert "blocks present with matching checksums" in text
    assert "ext4 filesystem clean" in text

    bad = drbot_lab.say("/dr verify longhorn archive", who="alice").job_id
    assert bad
    drbot_lab.wait_status(bad, "failed", timeout=120)
    text = drbot_lab.wait_reply(bad, "missing from the store", timeout=30)
    assert "FAILED: block at offset" in text

    report = drbot_lab.say("/dr backups archive", who="alice").job_id
    drbot_lab.wait_status(report, "succeeded", timeout=120)
    text = drbot_lab.wait_reply(report, "latest verification", timeout=30)
    assert "latest verification: failed" in text
    assert "last verified restorable point: none" in text


def test_verify_refuses_unknown_names_in_one_line(drbot_lab: Harness) -> None:
    job_id = drbot_lab.say("/dr verify longhorn apps/nothing", who="alice").job_id
    assert job_id
    job = drbot_lab.wait_status(job_id, "refused", timeout=60)  # refused at planning
    assert job.error.startswith("no longhorn backups named 'apps/nothing' in the store; known:")
    assert "apps/web-data" in job.error  # the known volumes, by their PVC

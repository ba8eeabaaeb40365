"""Through drbot itself against the lab: the scheduler's check runs on a real worker and its alert
reaches the alert channel; /dr backups answers in the thread; backup-now creates the object."""

from __future__ import annotations

import time

from bot.watch.scheduler import WatchScheduler
from tests.bot.harness import Harness, wait_until
from tests.e2e.conftest import drbot_lab, lab  # noqa: F401  (fixtures)


def test_scheduled_check_alerts_and_backups_reports(drbot_lab: Harness) -> None:  # noqa: F811
    job_id = WatchScheduler(drbot_lab.rt).tick(time.time())
    assert job_id
    drbot_lab.wait_status(job_id, "succeeded", timeout=60)
    alerts = wait_until(lambda: len(drbot_lab.frontend.alerts) >= 3 and drbot_lab.frontend.alerts,
                        30, "the seeded alerts in the alert channel")
    assert any("backup missed" in a and "apps/archive" in a for a in alerts)
    assert any("WAL archiving is failing" in a and "pg-auth" in a for a in alerts)
    assert any("/dr etcd-sync" in a for a in alerts)

    report_job = drbot_lab.say("/dr backups").job_id
    drbot_lab.wait_status(report_job, "succeeded", timeout=60)
    text = drbot_lab.wait_reply(report_job, "Backups as of")
    lines = text.splitlines()
    assert lines[1].startswith("read: the Kubernetes API")
    assert lines.index(next(ln for ln in lines if ln.startswith("Longhorn volumes"))) < \
        lines.index(next(ln for ln in lines if ln.startswith("CloudNativePG")))
    archive = next(ln for ln in lines if "apps/archive" in ln)
    assert "missed" in archive and "3d 0h ago (max 26h)" in archive
    first_volume = lines.index(next(ln for ln in lines if ln.startswith("Longhorn volumes"))) + 1
    assert "apps/archive" in lines[first_volume]  # worst first
    assert len(drbot_lab.frontend.alerts) == len(alerts)  # a second check repeats no alert

    one = drbot_lab.say("/dr backups archive").job_id
    drbot_lab.wait_status(one, "succeeded", timeout=60)
    detail = drbot_lab.wait_reply(one, "history")
    assert "status: ✗ missed" in detail and "answered from: store and cluster" in detail
    assert detail.count("in store and cluster") == 3


def test_system_command_is_refused_from_chat_and_hidden(drbot_lab: Harness) -> None:  # noqa: F811
    reply = drbot_lab.say("/dr backup-check")
    assert not reply.ok and "scheduler" in reply.text and reply.job_id is None
    help_text = drbot_lab.say("/dr help").text
    assert "backup-check" not in help_text and "/dr backups" in help_text


def test_backup_now_for_etcd_points_to_etcd_sync(drbot_lab: Harness) -> None:  # noqa: F811
    refused = drbot_lab.say("/dr backup-now etcd etcd", who="carol")
    drbot_lab.wait_status(refused.job_id, "refused", timeout=30)
    assert "etcd-sync" in (drbot_lab.job(refused.job_id).error or "")

"""Through drbot itself against the lab: the scheduler enqueues one doctor run a day, the worker
runs it, a credential that broke raises one alert in the alert channel and its repair another;
`/dr doctor` answers in the thread."""

from __future__ import annotations

import time

from bot.watch.scheduler import DOCTOR, DOCTOR_INTERVAL, WatchScheduler
from tests.bot.harness import Harness, wait_until
from tests.e2e.conftest import drbot_lab, lab  # noqa: F401  (fixtures)


def doctor_day(harness: Harness, scheduler: WatchScheduler, now: float) -> None:
    job_id = scheduler.tick(now, DOCTOR, DOCTOR_INTERVAL)
    assert job_id
    assert scheduler.tick(now + 60, DOCTOR, DOCTOR_INTERVAL) is None  # once a day
    harness.wait_status(job_id, "succeeded", timeout=300)


def test_daily_run_alerts_on_red_and_on_recovery(drbot_lab: Harness, lab) -> None:  # noqa: F811,ANN001
    scheduler = WatchScheduler(drbot_lab.rt)
    now = time.time()
    doctor_day(drbot_lab, scheduler, now)
    assert not any("drbot doctor" in a for a in drbot_lab.frontend.alerts)  # all green

    lab.world.deny_kube("delete", "longhorn.io", "nodes")
    doctor_day(drbot_lab, scheduler, now + DOCTOR_INTERVAL)
    red = wait_until(lambda: [a for a in drbot_lab.frontend.alerts if "drbot doctor" in a],
                     30, "the doctor's alert")
    assert len(red) == 1
    assert red[0].startswith("✗ drbot doctor: kubernetes permissions: denied to drbot's "
                             "account: delete nodes.longhorn.io\n")
    assert "clusterrole.yaml" in red[0]

    lab.world.allow_kube_all()
    doctor_day(drbot_lab, scheduler, now + 2 * DOCTOR_INTERVAL)
    back = wait_until(lambda: [a for a in drbot_lab.frontend.alerts if "green again" in a],
                      30, "the doctor's recovery")
    assert back[0].startswith("✓ drbot doctor: kubernetes permissions is green again after ")
    assert len([a for a in drbot_lab.frontend.alerts if "drbot doctor" in a]) == 2


def test_doctor_from_chat_answers_in_the_thread(drbot_lab: Harness) -> None:  # noqa: F811
    job_id = drbot_lab.say("/dr doctor", who="carol").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "succeeded", timeout=300)
    text = drbot_lab.wait_reply(job_id, "green, 0 red", timeout=30)
    assert text.splitlines()[:6] == ["✓ kubernetes: 2 green", "✓ proxmox: 12 green",
                                     "✓ store: 4 green", "✓ ssh: 5 green", "✓ iac: 12 green",
                                     "✓ drift: 17 green"]

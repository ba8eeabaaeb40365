"""One check after another against the lab, with the clock moved by the test (no sleeps).

The lab seeds: volume apps/archive whose last backup is 3 days old, CNPG cluster pg-auth with WAL
archiving failing (base backups fresh), and etcd snapshots whose off-node copies are 3 days old.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import redis

from adapters import backupstore as bs
from adapters.kubernetes import resources as R
from bot.records.signing import Signer
from bot.watch.alert_states import EVENTS, AlertEvent, Watch
from lab import Lab
from lab import store_writers as sw
from lab.fakes.frontend import KEY
from lab.fakes.kube import dead_endpoint
from tests.watch.conftest import Checker, volume

SIGNER = Signer(KEY.encode())


def events(client: redis.Redis, key: str | None = None) -> list[dict[str, str]]:
    """The alert events in the stream, opened as the bot opens them (each is signed)."""
    opened = [AlertEvent.opened(SIGNER, raw) for _, raw in client.xrange(EVENTS)]
    found = [{"alert": e.alert, "type": e.type, "text": e.text} for e in opened]
    return [e for e in found if key is None or e["alert"].startswith(key)]


def finding(outcome, name: str):  # type: ignore[no-untyped-def]
    return next(f for f in outcome.findings if name in (f.name, f.label))


def test_stale_volume_alerts_once_over_many_intervals(checker: Checker, watch_lab: Lab) -> None:
    archive = volume(watch_lab, "archive")
    for i in range(8):  # checks 15 minutes apart
        checker.at(i / 4)
    alerts = events(checker.client, f"longhorn:{archive}@")
    assert [e["type"] for e in alerts] == ["missed"]
    text = alerts[0]["text"]
    assert "apps/archive" in text and "3d 0h ago" in text and "every 26h, keep 7 days" in text
    assert "/dr backup-now longhorn apps/archive" in text
    assert "last good backup backup-" in text


def test_reminder_after_the_cadence_in_the_same_alert(checker: Checker, watch_lab: Lab) -> None:
    archive = volume(watch_lab, "archive")
    checker.at(0)
    checker.at(11.9)
    checker.at(12.1)
    checker.at(13)
    alerts = events(checker.client, f"longhorn:{archive}@")
    assert [e["type"] for e in alerts] == ["missed", "reminder"]
    assert alerts[0]["alert"] == alerts[1]["alert"]
    assert "still missed after" in alerts[1]["text"]


def test_a_restart_does_not_repeat_an_alert(checker: Checker, redis_url: str) -> None:
    checker.at(0)
    first = len(events(checker.client))
    checker.client.close()
    checker.client = redis.Redis.from_url(redis_url)  # a new process: only Redis remembers
    checker.at(0.1)
    assert len(events(checker.client)) == first > 0


def test_new_backup_in_the_store_posts_the_recovery(checker: Checker, watch_lab: Lab) -> None:
    archive = volume(watch_lab, "archive")
    store = checker.services().store("longhorn")
    cfg_key = bs.longhorn_volume_cfg_key("", archive)
    saved = store.read(cfg_key)
    checker.at(0)
    new = "backup-drbottest0001"
    try:
        sw.write_longhorn_backup(store, "", archive, new, checker.start + timedelta(hours=2),
                                 1024)
        outcome = checker.at(2.5)
    finally:
        store.delete([bs.longhorn_backup_cfg_key("", archive, new)])
        store.upload(cfg_key, saved)
    assert finding(outcome, archive).last_good == new
    alerts = events(checker.client, f"longhorn:{archive}@")
    assert [e["type"] for e in alerts] == ["missed", "recovered"]
    # overdue since the last backup + 26 h (72 h - 26 h ago); the new backup came 2 h from now
    assert "outage 2d 0h" in alerts[1]["text"] and new in alerts[1]["text"]


def _lh_backup(name: str, volume_name: str, state: str, at: str) -> dict:
    return {"apiVersion": R.LH_BACKUPS.api_version, "kind": R.LH_BACKUPS.kind,
            "metadata": {"name": name, "namespace": R.LONGHORN_NAMESPACE,
                         "labels": {"backup-volume": volume_name}},
            "spec": {"snapshotName": name},
            "status": {"state": state, "volumeName": volume_name, "backupCreatedAt": at,
                       "snapshotCreatedAt": at}}


def _backups(lab: Lab, create: dict | None = None, delete: str = "") -> None:
    """Seed or remove a Longhorn Backup with the plain client, not drbot's: the ClusterRole
    check (tests/ship/test_rbac.py) counts drbot's own requests only."""
    import kubernetes

    b = R.LH_BACKUPS
    with kubernetes.config.new_client_from_config(str(lab.kubeconfig)) as api:
        custom = kubernetes.client.CustomObjectsApi(api)
        if create:
            custom.create_namespaced_custom_object(b.group, b.version, R.LONGHORN_NAMESPACE,
                                                   b.plural, create)
        if delete:
            custom.delete_namespaced_custom_object(b.group, b.version, R.LONGHORN_NAMESPACE,
                                                   b.plural, delete)


def test_backup_in_kubernetes_but_not_in_the_bucket_is_missed(checker: Checker,
                                                               watch_lab: Lab) -> None:
    archive = volume(watch_lab, "archive")
    at = (checker.start - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _backups(watch_lab, create=_lh_backup("backup-ghost", archive, "Completed", at))
    try:
        outcome = checker.at(0)
    finally:
        _backups(watch_lab, delete="backup-ghost")
    found = finding(outcome, archive)
    assert found.status == "missed" and found.last_good != "backup-ghost"
    assert any("backup-ghost completed but it is not in the bucket" in n for n in found.notes)
    ghost = [h[2:] for h in found.history if h[1] == "backup-ghost"]
    assert ghost == [["cluster", "not in bucket"]]  # listed, as the cluster's claim alone


def test_an_in_progress_backup_does_not_count(checker: Checker, watch_lab: Lab) -> None:
    archive = volume(watch_lab, "archive")
    store = checker.services().store("longhorn")
    at = (checker.start - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _backups(watch_lab, create=_lh_backup("backup-running", archive, "InProgress", at))
    key = sw.write_longhorn_backup(store, "", archive, "backup-running", None, 1024)
    try:
        outcome = checker.at(0)
    finally:
        _backups(watch_lab, delete="backup-running")
        store.delete([key])
    found = finding(outcome, archive)
    assert found.status == "missed" and found.last_good != "backup-running"
    assert any("backup-running is in progress" in n and "not counted" in n for n in found.notes)


def test_store_unreachable_is_one_blind_alert_and_its_recovery(checker: Checker) -> None:
    dead = checker.inventory.backups.longhorn_store.model_copy(  # type: ignore[union-attr]
        update={"endpoint_url": dead_endpoint()})
    blind = checker.with_backups(longhorn_store=dead)
    checker.at(0)  # the seeded alerts, seen in full
    before = events(checker.client)
    for i in range(1, 4):
        outcome = checker.at(i / 12, blind)
    new = events(checker.client)[len(before):]
    assert [e["type"] for e in new] == ["blind"]
    assert "the Longhorn store s3://drbot-lab-longhorn/" in new[0]["text"]
    assert "since" in new[0]["text"]
    assert all(f.partial for f in outcome.findings if f.kind == "longhorn")
    checker.at(0.5)
    recovered = events(checker.client)[len(before) + 1:]
    assert [e["type"] for e in recovered] == ["sight"]
    assert recovered[0]["alert"] == new[0]["alert"] and "blind for 25m" in recovered[0]["text"]


def test_cluster_unreachable_is_one_blind_alert_and_answers_from_the_store(
        checker: Checker, watch_lab: Lab) -> None:
    kubernetes = checker.inventory.kubernetes.model_copy(update={"endpoints": [dead_endpoint()]})
    blind = checker.inventory.model_copy(update={"kubernetes": kubernetes})
    checker.at(0)
    before = events(checker.client)
    outcome = checker.at(0.1, blind)
    checker.at(0.2, blind)
    new = events(checker.client)[len(before):]
    assert [e["type"] for e in new] == ["blind"] and "Kubernetes API" in new[0]["text"]
    archive = finding(outcome, volume(watch_lab, "archive"))
    assert archive.status == "missed" and archive.source == "store only"
    checker.at(0.3)
    assert [e["type"] for e in events(checker.client)[len(before):]] == ["blind", "sight"]


def test_wal_archiving_failing_is_reported_while_base_backups_are_fresh(checker: Checker) -> None:
    outcome = checker.at(0)
    auth = finding(outcome, "pg-auth")
    assert auth.status == "archiving failing" and auth.age is not None
    assert auth.age < auth.max_age_hours * 3600  # the base backups are fresh
    assert "AccessDenied" in auth.problem
    assert finding(outcome, "pg-main").status in ("ok", "retention gap")
    alert = events(checker.client, "cnpg:pg-auth@")
    assert [e["type"] for e in alert] == ["missed"] and "WAL archiving is failing" in alert[0]["text"]


def test_a_missing_day_is_a_retention_gap(checker: Checker, watch_lab: Lab) -> None:
    outcome = checker.at(0)
    web = finding(outcome, "apps/web-data")  # backups 0.2, 1.2 and 2.2 days old
    assert web.status == "retention gap" and "policy keeps 7 days" in web.retention
    short = checker.with_backups(longhorn=checker.inventory.backups.longhorn.model_copy(
        update={"retention_days": 3}))
    assert finding(checker.at(0, short), "apps/web-data").status == "ok"
    archive = finding(outcome, "apps/archive")  # 3, 4 and 5 days old: yesterday is missing
    assert "no backup on" in archive.retention
    assert not [e for e in events(checker.client) if "web-data" in e["text"]]  # not alerted


def test_exclusions_and_overrides(checker: Checker) -> None:
    lh = checker.inventory.backups.longhorn.model_copy(update={
        "exclude": ["apps/arch*"], "overrides": {"apps/media": {"max_age_hours": 1}}})
    outcome = checker.at(0, checker.with_backups(longhorn=lh))
    assert not [f for f in outcome.findings if f.label == "apps/archive"]
    media = finding(outcome, "apps/media")
    assert media.status == "missed" and media.max_age_hours == 1


def test_only_one_check_runs_at_a_time(checker: Checker) -> None:
    from bot.errors import CommandError

    with Watch(checker.client).checking(ttl=60), contextlib.suppress(CommandError):
        checker.at(0)
        raise AssertionError("a second check ran beside the first")

"""/dr verify through its runbook with a real Redis and the S3 emulator holding real Longhorn
blocks; the results kept per object; how the watch judges, reports, alerts and measures them; the
rotation's choice."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from adapters.progress import Hooks
from adapters.verify import longhorn as lv
from bot import registry
from bot.config.inventory import Backups, Inventory, Store, Verify
from bot.config.settings import Settings
from bot.errors import CommandError
from bot.records.signing import Signer
from bot.runbook import PlanContext, Runbook, StepContext
from bot.watch import verified
from bot.watch.alert_states import Watch
from bot.watch.evaluate import Finding, verification
from bot.watch.facts import Facts, Sight
from bot.watch.gauges import install
from bot.worker.services import Services
from handlers.backups import detail, row
from handlers.verify import due
from lab import store_writers as sw
from lab.fakes.frontend import KEY
from lab.fakes.s3 import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, S3Server
from tests.adapters.verify.test_cnpg import SERVER, Archive, archive, open_dir  # noqa: F401
from tests.adapters.verify.test_etcd import SourceEtcd, save, source  # noqa: F401

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def ext4(tmp_path: Path, tag: str) -> Path:
    src = tmp_path / f"files-{tag}"
    src.mkdir()
    (src / "data.bin").write_bytes(os.urandom(900_000))
    image = tmp_path / f"{tag}.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(image), "8M"], check=True,
                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return image


@pytest.fixture
def services(s3_server: S3Server, redis_url: str, tmp_path: Path) -> Services:
    bucket = s3_server.new_bucket()
    creds = tmp_path / "s3-credentials"
    creds.write_text(f"access_key={FAKE_ACCESS_KEY}\nsecret_key={FAKE_SECRET_KEY}\n")
    store = Store(url=f"s3://{bucket}", endpoint_url=s3_server.endpoint_url,
                  credentials_file=str(creds))
    inventory = Inventory(backups=Backups(
        longhorn_store=store, verify_every=7,
        verify=Verify(scratch_dir=str(tmp_path / "scratch"))))
    settings = Settings(kubeconfig=None, redis_url=redis_url, redis_allow_no_password=True)
    return Services(settings, inventory)


def client(services: Services) -> redis.Redis:
    assert services.settings.redis_url
    return redis.Redis.from_url(services.settings.redis_url)


def plan(services: Services, text: str) -> Runbook:
    spec, parsed = registry.parse(text)
    return spec.fn(PlanContext(dict(parsed.args), services.inventory, services))


def run_all(book: Runbook, services: Services) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for step in book.steps:
        ctx = StepContext("job", step.name, results, Hooks(), services, services.inventory)
        results[step.name] = step.run(ctx) or {}
    return results


def seed(services: Services, tmp_path: Path, volume: str, backup: str = "backup-1") -> lv.Plan:
    return sw.write_backup(services.store("longhorn"), "", volume, backup,
                           ext4(tmp_path, f"{volume}-{backup}"), created=NOW)


def damage(services: Services, plan_: lv.Plan) -> None:
    store = services.store("longhorn")
    store.delete([lv.block_key("", plan_.volume, plan_.blocks[0].checksum)])


def test_verify_one_volume_keeps_its_result(services: Services, tmp_path: Path) -> None:
    seed(services, tmp_path, "pvc-data")

    book = plan(services, "verify longhorn pvc-data --deep")
    results = run_all(book, services)

    assert results["verify longhorn pvc-data"]["ok"] is True
    assert book.summary is not None and "1 restorable" in book.summary(results)
    rec = verified.load(client(services))["longhorn:pvc-data"]
    assert rec.ok and rec.backup_id == "backup-1" and rec.bytes_read > 0
    assert rec.last_ok_backup == "backup-1"
    assert any("ext4 filesystem clean" in c for c in rec.checked)
    assert not list((tmp_path / "scratch").iterdir())


def test_a_failed_verification_fails_the_job_and_keeps_the_last_restorable_point(
        services: Services, tmp_path: Path) -> None:
    seed(services, tmp_path, "pvc-data")
    run_all(plan(services, "verify longhorn pvc-data"), services)
    damage(services, seed(services, tmp_path, "pvc-data", "backup-2"))

    with pytest.raises(CommandError, match="backup-2: FAILED: block at offset 0 .* missing"):
        run_all(plan(services, "verify longhorn pvc-data"), services)

    rec = verified.load(client(services))["longhorn:pvc-data"]
    assert not rec.ok and rec.backup_id == "backup-2"
    assert rec.last_ok_backup == "backup-1"  # the last verified restorable point stays


def test_verify_all_checks_every_object_then_reports_the_failures(services: Services,
                                                                  tmp_path: Path) -> None:
    seed(services, tmp_path, "pvc-a")
    damage(services, seed(services, tmp_path, "pvc-b"))

    book = plan(services, "verify all")
    assert book.targets == ["longhorn pvc-a", "longhorn pvc-b"]
    with pytest.raises(CommandError, match="1 backup\\(s\\) failed or could not be verified: "
                                           ".*pvc-b"):
        run_all(book, services)
    assert set(verified.load(client(services))) == {"longhorn:pvc-a", "longhorn:pvc-b"}


def test_verify_all_goes_on_when_one_object_cannot_be_verified(services: Services,
                                                              tmp_path: Path) -> None:
    seed(services, tmp_path, "pvc-a")
    store = services.store("longhorn")
    from adapters import backupstore

    store.upload(backupstore.longhorn_backup_cfg_key("", "pvc-b", "backup-run"),
                 sw.longhorn_backup_cfg("pvc-b", "backup-run", None, 0))
    sw.write_longhorn_volume(store, "", "pvc-b", size=8 << 20,
                                      last_backup_name="backup-run")
    book = plan(services, "verify all")

    with pytest.raises(CommandError, match="longhorn pvc-b: could not verify: backup backup-run "
                                           "of pvc-b is still in progress"):
        run_all(book, services)
    assert set(verified.load(client(services))) == {"longhorn:pvc-a"}  # nothing said of pvc-b


@pytest.mark.parametrize(("text", "message"), [
    ("verify longhorn pvc-nope", "no longhorn backups named 'pvc-nope' in the store; known: pvc-a"),
    ("verify longhorn", "needs a name"),
    ("verify all pvc-a", "takes no name"),
    ("verify etcd node-1", "takes no name"),
    ("verify cnpg pg --deep", "--deep applies to Longhorn only"),
])
def test_bad_input_is_one_clear_line(services: Services, tmp_path: Path, text: str,
                                     message: str) -> None:
    seed(services, tmp_path, "pvc-a")
    with pytest.raises(CommandError, match=message):
        plan(services, text)


def finding(status: str = "ok") -> Finding:
    return Finding("longhorn", "pvc-a", "apps/data", status, max_age_hours=26)


def record(ok: bool, at: datetime, last_ok: datetime | None = None) -> dict[str, Any]:
    return {"kind": "longhorn", "name": "pvc-a", "backup_id": "backup-9",
            "outcome": "ok" if ok else "failed", "verified_at": at.timestamp(),
            "problem": "" if ok else "block at offset 0 is missing from the store",
            "last_ok_at": (last_ok or at).timestamp() if ok or last_ok else None,
            "last_ok_backup": "backup-8", "checked": [], "bytes_read": 1, "duration": 1.0}


def test_the_watch_judges_verifications() -> None:
    failed = verification(finding(), record(False, NOW - timedelta(hours=2)), 7, NOW)
    assert failed.status == "verify failed" and failed.bad
    assert failed.problem.startswith("verification of backup backup-9 failed 2h 0m ago: block")
    assert failed.command == "/dr verify longhorn pvc-a"

    never = verification(finding(), None, 7, NOW)
    assert never.status == "verify overdue"
    assert never.problem == "never verified restorable; policy: every 7 days"

    stale = verification(finding(), record(True, NOW - timedelta(days=8)), 7, NOW)
    assert stale.status == "verify overdue" and "8d 0h ago" in stale.problem

    fresh = verification(finding(), record(True, NOW - timedelta(days=6)), 7, NOW)
    assert fresh.status == "ok"
    assert verification(finding(), None, 0, NOW).status == "ok"  # no rotation: no overdue
    missed = verification(finding("missed"), record(False, NOW), 7, NOW)
    assert missed.status == "missed"  # the worse problem stays in front


def test_a_failed_verification_raises_an_alert_and_a_pass_recovers_it(redis_url: str) -> None:
    watch = Watch(redis.Redis.from_url(redis_url), Signer(KEY.encode()))
    facts = Facts(NOW, sights={"cluster": Sight("cluster", "the API")})

    bad = verification(finding(), record(False, NOW), 7, NOW)
    opened = watch.record(facts, [bad], NOW.timestamp(), 12)
    good = verification(finding(), record(True, NOW + timedelta(hours=1)), 7, NOW)
    closed = watch.record(facts, [good], NOW.timestamp() + 3600, 12)

    assert [e.text.split(":")[0] for e in opened] == ["⚠ verify failed"]
    assert closed and closed[0].type == "recovered"


def test_backups_report_shows_the_last_verified_restorable_point() -> None:
    f = verification(finding(), record(False, NOW, last_ok=NOW - timedelta(days=1)), 7, NOW)
    f.verified["last_ok_point"] = "2026-12-03T11:00:00+00:00"

    text = detail(f, {"at": NOW.timestamp()})

    assert "last verified restorable point: backup backup-8 (restores to 2026-12-03T11:00" in text
    assert "latest verification: failed at 2026-12-04 12:00 UTC, backup backup-9" in text
    assert "verified " in row(f) and "verify failed" in row(f)


def test_metrics_tell_verified_age_and_outcome(services: Services, tmp_path: Path) -> None:
    seed(services, tmp_path, "pvc-data")
    run_all(plan(services, "verify longhorn pvc-data"), services)
    reg = CollectorRegistry()
    install(client(services), reg)

    text = generate_latest(reg).decode()

    assert 'drbot_backup_verify_ok{kind="longhorn",name="pvc-data"} 1.0' in text
    assert 'drbot_backup_verified_age_seconds{kind="longhorn",name="pvc-data"}' in text


def test_the_rotation_picks_never_verified_then_oldest_and_retries_failures_sooner() -> None:
    inv = Inventory(backups=Backups(verify_every=4))
    found = [("longhorn", "a"), ("longhorn", "b"), ("cnpg", "c")]

    def rec(kind: str, name: str, days: float, ok: bool = True) -> verified.VerificationRecord:
        at = (NOW - timedelta(days=days)).timestamp()
        return verified.VerificationRecord(kind, name, "x", "ok" if ok else "failed", at, 1, 1)

    assert due(inv, found, {"longhorn:a": rec("longhorn", "a", 1),
                            "longhorn:b": rec("longhorn", "b", 2)}, NOW) == ("cnpg", "c")
    recent = {k: rec(*k.split(":"), 1) for k in ("longhorn:a", "longhorn:b", "cnpg:c")}
    assert due(inv, found, recent, NOW) is None
    recent["longhorn:b"] = rec("longhorn", "b", 5)
    recent["cnpg:c"] = rec("cnpg", "c", 6)
    assert due(inv, found, recent, NOW) == ("cnpg", "c")  # the oldest first
    recent = {k: rec(*k.split(":"), 1) for k in ("longhorn:a", "longhorn:b", "cnpg:c")}
    recent["longhorn:a"] = rec("longhorn", "a", 1.5, ok=False)  # failed: retried after 1 day
    assert due(inv, found, recent, NOW) == ("longhorn", "a")
    assert due(Inventory(), found, {}, NOW) is None  # no rotation configured


def test_the_rotation_respects_the_daily_budget(services: Services, tmp_path: Path) -> None:
    seed(services, tmp_path, "pvc-data")
    cfg = services.inventory.backups.verify.model_copy(update={"daily_budget_gb": 1e-9})
    services.inventory = services.inventory.model_copy(update={
        "backups": services.inventory.backups.model_copy(update={"verify": cfg})})
    book = plan(services, "verify-next")

    first = run_all(book, services)
    second = run_all(book, services)

    assert first["verify the most overdue object"]["ok"] is True
    assert "budget" in second["verify the most overdue object"]["text"]


# --- the other two kinds through the handler, with their real tools ----------------------------


def kind_services(s3_server: S3Server, redis_url: str, tmp_path: Path, kind: str, bucket: str,
                  prefix: str, **verify: Any) -> Services:
    creds = tmp_path / "s3-credentials"
    creds.write_text(f"access_key={FAKE_ACCESS_KEY}\nsecret_key={FAKE_SECRET_KEY}\n")
    store = Store(url=f"s3://{bucket}/{prefix}", endpoint_url=s3_server.endpoint_url,
                  credentials_file=str(creds))
    backups = Backups(**{f"{kind}_store": store}, verify=Verify(**verify))
    return Services(Settings(kubeconfig=None, redis_url=redis_url, redis_allow_no_password=True),
                    Inventory(backups=backups))


def test_verify_etcd_through_the_handler(s3_server: S3Server, redis_url: str, tmp_path: Path,
                                         source: SourceEtcd) -> None:  # noqa: F811
    bucket = s3_server.new_bucket()
    name = save(source, tmp_path, s3_server.store(bucket), compress=True)
    services = kind_services(s3_server, redis_url, tmp_path, "etcd", bucket, "k3s",
                             scratch_dir=str(tmp_path / "scratch"))

    results = run_all(plan(services, "verify etcd"), services)

    assert results["verify etcd etcd"]["ok"] is True
    rec = verified.load(client(services))["etcd:etcd"]
    assert rec.backup_id == name and rec.last_ok_point.startswith("2025-12-05T02:00")


def test_verify_cnpg_through_the_handler_runs_the_inventory_checks(
        s3_server: S3Server, redis_url: str, tmp_path: Path,
        archive: Archive) -> None:  # noqa: F811
    bucket = s3_server.new_bucket()
    s3 = s3_server.client()
    for obj in s3.list_objects_v2(Bucket=archive.bucket)["Contents"]:
        s3.copy_object(Bucket=bucket, Key=obj["Key"],
                       CopySource={"Bucket": archive.bucket, "Key": obj["Key"]})
    root = open_dir("handler-scratch")
    try:
        checks = {SERVER: [{"name": "orders", "query": "SELECT count(*) FROM orders",
                            "expect": "801"}]}
        services = kind_services(s3_server, redis_url, tmp_path, "cnpg", bucket, "cnpg",
                                 scratch_dir=str(root / "scratch"), cnpg_checks=checks)

        with pytest.raises(CommandError, match="check 'orders': returned '800', expected '801'"):
            run_all(plan(services, f"verify cnpg {SERVER}"), services)
    finally:
        import shutil

        shutil.rmtree(root)
    rec = verified.load(client(services))[f"cnpg:{SERVER}"]
    assert not rec.ok and rec.backup_id == archive.backup_id
    assert any(c.startswith("recovered to the end of the archive") for c in rec.checked)


def test_the_scheduler_enqueues_one_rotation_job_per_hour_when_configured(
        redis_url: str, tmp_path: Path) -> None:
    from bot.watch.scheduler import WatchScheduler
    from tests.bot.harness import Harness

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("backups: {verify_every: 7, check_interval_seconds: 600}\n")
    harness = Harness(redis_url, tmp_path, DRBOT_INVENTORY=str(inventory))
    try:
        scheduler = WatchScheduler(harness.rt)
        for minute in range(0, 180, 5):  # three hours, ticking every five minutes
            scheduler.tick_all(1_800_000_000 + minute * 60)
        jobs = [harness.rt.store.get(j) for j in harness.rt.store.recent(100)]
        rotations = [j for j in jobs if j.command == "verify-next"]
        checks = [j for j in jobs if j.command == "backup-check"]
        assert len(rotations) == 3  # three hours
        assert len(checks) == 18  # one per 600 s slot
        assert {j.account for j in rotations} == {"system:scheduler"}
    finally:
        harness.close()

"""CloudNativePG verification against a real archive: a real PostgreSQL 15 (Debian's packages)
backed up with barman-cloud-backup and archiving its WAL with barman-cloud-wal-archive into the
S3 emulator, then restored by barman-cloud-restore into a throwaway server that answers SQL."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.errors import AdapterError, Cancelled, NotFound
from adapters.s3 import ObjectStore
from adapters.subprocesses import alive
from adapters.verify import VerificationOutcome
from adapters.verify import cnpg as cv
from adapters.verify.scratch import ScratchConfig
from lab.fakes.s3 import S3Server
from tests.support import Recorder, wait_until

PG_BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"  # PostgreSQL refuses to run as root; Debian's package creates this user
SERVER = "pg-main"
TOOLS = cv.PostgresTools()
pytestmark = pytest.mark.skipif(not (PG_BIN / "postgres").exists(),
                                reason="Debian's postgresql-15 is not installed (make test installs it)")


def as_user(argv: list[str]) -> dict[str, object]:
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def barman(tool: str, *args: str, s3: S3Server) -> None:
    subprocess.run([TOOLS.barman(tool), "--endpoint-url", s3.endpoint_url, *args], check=True,
                   capture_output=True, env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})


@dataclass
class Archive:
    bucket: str
    backup_id: str
    segments: list[str]  # archived WAL segment names, in order
    rows: int


class Source:
    """A running PostgreSQL 15 whose archive_command spools WAL for barman-cloud-wal-archive."""

    def __init__(self, root: Path) -> None:
        self.root, self.data, self.sock, self.spool = root, root / "data", root / "sock", root / "spool"
        for d in (root, self.sock, self.spool):
            d.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(d, USER)
        subprocess.run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", USER],
                       check=True, capture_output=True, **as_user([]))  # type: ignore[arg-type]
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(f"listen_addresses = ''\nunix_socket_directories = '{self.sock}'\n"
                    "wal_level = replica\narchive_mode = on\n"
                    f"archive_command = 'cp %p {self.spool}/%f'\n")
        self.pg_ctl("start", "-w", "-l", str(root / "log"))

    def pg_ctl(self, *args: str) -> None:
        subprocess.run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args], check=True,
                       capture_output=True, **as_user([]))  # type: ignore[arg-type]

    def sql(self, query: str) -> str:
        return subprocess.run([str(PG_BIN / "psql"), "-X", "-A", "-t", "-h", str(self.sock),
                               "-U", USER, "-d", "postgres", "-c", query], check=True,
                              capture_output=True, text=True).stdout.strip()

    def switch_wal(self) -> None:
        self.sql("SELECT pg_switch_wal()")

    def archive(self, s3: S3Server, bucket: str) -> list[str]:
        """Ship what the server spooled, in order, with the real barman-cloud-wal-archive."""
        names = sorted(os.listdir(self.spool))
        for name in names:
            barman("barman-cloud-wal-archive", f"s3://{bucket}/cnpg", SERVER,
                   str(self.spool / name), s3=s3)
            (self.spool / name).unlink()
        return [n for n in names if len(n) == 24]


def open_dir(tag: str) -> Path:
    """A directory the server user can reach (pytest's own tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix=f"drbot-test-{tag}-"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def archive(s3_server: S3Server) -> Iterator[Archive]:
    root = open_dir("pg-source")
    bucket = s3_server.new_bucket()
    src = Source(root / "pg")
    try:
        src.sql("CREATE TABLE orders (id serial PRIMARY KEY, placed_at timestamptz DEFAULT now())")
        src.sql("INSERT INTO orders SELECT FROM generate_series(1, 500)")
        barman("barman-cloud-backup", "-h", str(src.sock), "-U", USER, "--immediate-checkpoint",
               f"s3://{bucket}/cnpg", SERVER, s3=s3_server)
        for _ in range(3):  # three more segments after the backup, each with new orders
            src.sql("INSERT INTO orders SELECT FROM generate_series(1, 100)")
            src.switch_wal()
        wait_until(lambda: len([n for n in os.listdir(src.spool) if len(n) == 24]) >= 5,
                   what="PostgreSQL to archive its WAL")
        segments = src.archive(s3_server, bucket)
        listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=f"cnpg/{SERVER}/base/")
        backup_id = listed["Contents"][0]["Key"].split("/")[3]
        yield Archive(bucket, backup_id, segments, 800)
    finally:
        src.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(root)


@pytest.fixture
def store(s3_server: S3Server, archive: Archive) -> ObjectStore:
    """A fresh bucket holding a copy of the archive, so each test may damage its own."""
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    for obj in client.list_objects_v2(Bucket=archive.bucket)["Contents"]:
        client.copy_object(Bucket=bucket, Key=obj["Key"],
                           CopySource={"Bucket": archive.bucket, "Key": obj["Key"]})
    return s3_server.store(bucket, "cnpg")


@pytest.fixture
def scratch() -> Iterator[ScratchConfig]:
    root = open_dir("scratch")
    yield ScratchConfig(str(root / "scratch"))
    shutil.rmtree(root)


def leftovers(scratch: ScratchConfig) -> list[Path]:
    root = Path(scratch.root)
    return list(root.iterdir()) if root.exists() else []


def wal_key(store: ObjectStore, name: str) -> str:
    return next(o.key for o in store.list(f"{SERVER}/wals/") if o.key.endswith(name))


def test_restores_recovers_to_the_end_of_the_archive_and_answers_sql(
        store: ObjectStore, archive: Archive, scratch: ScratchConfig) -> None:
    rec = Recorder()
    checks = [cv.SqlCheck("orders", "SELECT count(*) FROM orders", expect=str(archive.rows)),
              cv.SqlCheck("fresh orders", "SELECT max(placed_at) FROM orders",
                          max_age_seconds=3600)]

    result = cv.verify(store, SERVER, tools=TOOLS, checks=checks, scratch=scratch,
                       hooks=rec.hooks)

    assert result.outcome is VerificationOutcome.OK, result.problem
    assert result.backup_id == archive.backup_id
    assert "check 'orders' passed" in result.checked
    assert "check 'fresh orders' passed" in result.checked
    recovered = datetime.fromisoformat(str(result.details["recovered_to"]))
    assert (datetime.now(UTC) - recovered).total_seconds() < 3600
    assert result.details["postgres_major"] == 15
    assert float(result.details["rto_seconds"]) > 0
    assert leftovers(scratch) == []
    assert rec.pids and not any(alive(p) for p in rec.pids)


def test_a_missing_wal_segment_in_the_middle_fails_naming_it(
        store: ObjectStore, archive: Archive, scratch: ScratchConfig) -> None:
    middle = archive.segments[-2]
    store.delete([wal_key(store, middle)])

    result = cv.verify(store, SERVER, tools=TOOLS, scratch=scratch)

    assert result.outcome is VerificationOutcome.FAILED
    assert result.problem.startswith(f"WAL segment {middle} is missing from the archive")
    assert leftovers(scratch) == []


def test_a_damaged_wal_segment_stops_recovery_and_fails(
        store: ObjectStore, archive: Archive, scratch: ScratchConfig) -> None:
    victim = archive.segments[-2]
    key = wal_key(store, victim)
    store.upload(key, b"\0" * (16 << 20))  # a zeroed segment: no valid record in it

    result = cv.verify(store, SERVER, tools=TOOLS, scratch=scratch)

    assert not result.ok
    assert result.problem.startswith(
        f"recovery did not reach the end of the archive ({archive.segments[-1]})")
    assert f"in log segment {victim}" in result.problem  # PostgreSQL's reason names it


def test_a_base_backup_whose_data_files_were_deleted_fails(
        store: ObjectStore, archive: Archive, scratch: ScratchConfig) -> None:
    tars = [o.key for o in store.list(f"{SERVER}/base/{archive.backup_id}/")
            if ".tar" in o.key]
    store.delete(tars)

    result = cv.verify(store, SERVER, tools=TOOLS, scratch=scratch)

    assert not result.ok
    assert archive.backup_id in result.problem
    assert "data" in result.problem, result.problem
    assert leftovers(scratch) == []


def test_a_failing_sql_check_names_the_check(store: ObjectStore, scratch: ScratchConfig) -> None:
    checks = [cv.SqlCheck("orders", "SELECT count(*) FROM orders", expect="1000000")]

    result = cv.verify(store, SERVER, tools=TOOLS, checks=checks, scratch=scratch)

    assert not result.ok
    assert result.problem == "check 'orders': returned '800', expected '1000000'"


def test_checks_run_read_only(store: ObjectStore, scratch: ScratchConfig) -> None:
    checks = [cv.SqlCheck("sneaky", "INSERT INTO orders DEFAULT VALUES RETURNING 1", expect="1")]

    result = cv.verify(store, SERVER, tools=TOOLS, checks=checks, scratch=scratch)

    assert not result.ok
    assert "read-only transaction" in result.problem


def test_missing_server_binaries_say_what_to_install(store: ObjectStore,
                                                     scratch: ScratchConfig) -> None:
    tools = cv.PostgresTools(bin_dir="/nonexistent/pg/{major}/bin")

    with pytest.raises(AdapterError, match="PostgreSQL 15 server binaries are missing .* "
                                           "install postgresql-15"):
        cv.verify(store, SERVER, tools=tools, scratch=scratch)
    assert leftovers(scratch) == []


def test_unknown_backup_and_server_are_clear_errors(store: ObjectStore,
                                                   scratch: ScratchConfig) -> None:
    with pytest.raises(NotFound, match="has no base backup '20200101T000000'"):
        cv.verify(store, SERVER, "20200101T000000", tools=TOOLS, scratch=scratch)
    with pytest.raises(NotFound, match="no completed base backup"):
        cv.verify(store, "pg-other", tools=TOOLS, scratch=scratch)


def test_cancel_during_recovery_stops_the_server(store: ObjectStore,
                                                 scratch: ScratchConfig) -> None:
    rec = Recorder()
    rec.hooks.cancelled = lambda: any(_program(p) == "postgres" for p in rec.pids)

    with pytest.raises(Cancelled):
        cv.verify(store, SERVER, tools=TOOLS, scratch=scratch, hooks=rec.hooks)

    assert not any(alive(p) for p in rec.pids)
    assert leftovers(scratch) == []


def _program(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0].decode())
    except OSError:
        return ""

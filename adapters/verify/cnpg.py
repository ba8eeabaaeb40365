"""Verify a CloudNativePG backup from its object store with barman's own cloud tools.

``barman-cloud-backup-list`` picks the base backup (and tells its PostgreSQL version),
``barman-cloud-restore`` restores it into scratch space, ``barman-cloud-wal-restore`` fetches
every WAL segment archived after it, and a throwaway PostgreSQL of the backup's major version
recovers to the end of the archive, then answers read-only SQL checks. The layout is barman's
(``<destinationPath>/<serverName>/base/<id>/``, ``wals/<TTTTTTTTLLLLLLLL>/<segment>[.gz...]``).

Safety of the throwaway server:
- it never sees the store's credentials: the worker fetches the WAL beforehand, and the
  server's ``restore_command`` only copies from a local directory;
- ``archive_mode = off`` and a configuration file of drbot's own replace the backup's
  (``postgresql.auto.conf`` is moved aside), so nothing it does can archive anywhere;
- it listens on a Unix socket in the scratch directory only (``listen_addresses = ''``), with
  ``default_transaction_read_only = on`` and each check in a ``READ ONLY`` transaction;
- when the worker runs as root it runs as ``server_user`` (PostgreSQL refuses root).

Why not ``barman-cloud-check-wal-archive``: it checks that an archive is *empty enough for a new
server* to archive into, the opposite of what a verification needs; gaps are found by listing
the WAL names and by comparing what recovery replayed with what the archive holds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.backupstore import parse_time
from adapters.errors import AdapterError, NotFound
from adapters.progress import Hooks, Progress, one_line
from adapters.s3 import ObjectStore
from adapters.subprocesses import run
from adapters.verify import BackupKind, Verification, VerificationOutcome
from adapters.verify.scratch import ScratchConfig, check_space, human, scratch_dir
from adapters.verify.server import ServerExited, Throwaway

RECOVERY_TIMEOUT = 3600.0
_PATH = "/usr/local/bin:/usr/bin:/bin"
_SEGMENT = re.compile(r"^(?P<tli>[0-9A-F]{8})(?P<log>[0-9A-F]{8})(?P<seg>[0-9A-F]{8})"
                      r"(?P<ext>\.(gz|bz2|xz|snappy|zst|lz4))?$")
_HISTORY = re.compile(r"^[0-9A-F]{8}\.history(\.(gz|bz2|xz|snappy|zst|lz4))?$")
_RESTORED = re.compile(r'restored log file "([0-9A-F]{24})" from archive')
_LAST_XACT = re.compile(r"last completed transaction was at log time (.+)$")
_READY = "database system is ready to accept connections"


@dataclass(frozen=True)
class SqlCheck:
    """A read-only query run on the restored database.

    ``expect``: the first column of the first row must equal it (as psql prints it).
    ``max_age_seconds``: the query returns a timestamp, which must be at most that old when
    the verification runs (how fresh the restored data is).
    """

    name: str
    query: str
    database: str = "postgres"
    expect: str | None = None
    max_age_seconds: int | None = None


DEFAULT_CHECKS = (SqlCheck("select 1", "SELECT 1", expect="1"),)


@dataclass(frozen=True)
class PostgresTools:
    """Where the tools are. ``bin_dir`` may hold ``{major}``; ``barman_dir`` defaults to the
    directory of drbot's own Python (``drbot[verify]`` installs barman there), then PATH."""

    bin_dir: str = "/usr/lib/postgresql/{major}/bin"
    barman_dir: str | None = None
    server_user: str = "postgres"
    superuser: str = "postgres"

    def barman(self, tool: str) -> str:
        dirs = [self.barman_dir] if self.barman_dir else [os.path.dirname(sys.executable),
                                                           *_PATH.split(":")]
        for d in dirs:
            if d and os.access(os.path.join(d, tool), os.X_OK):
                return os.path.join(d, tool)
        raise AdapterError(f"{tool} was not found in {', '.join(d for d in dirs if d)}: install "
                           "drbot[verify] (barman[cloud]) or set verify.barman_dir")

    def server(self, major: int) -> tuple[str, str]:
        bin_dir = self.bin_dir.format(major=major)
        postgres, psql = os.path.join(bin_dir, "postgres"), os.path.join(bin_dir, "psql")
        if not (os.access(postgres, os.X_OK) and os.access(psql, os.X_OK)):
            raise AdapterError(
                f"PostgreSQL {major} server binaries are missing on the worker (looked in "
                f"{bin_dir}): install postgresql-{major} (Debian/Ubuntu: apt-get install "
                f"postgresql-{major}) or set verify.postgres_bin_dir; no server was started")
        return postgres, psql


@dataclass(frozen=True)
class BaseBackup:
    backup_id: str
    major: int
    begin_wal: str
    end_wal: str
    end_time: datetime | None
    segment_size: int
    timeline: int


@dataclass
class _Run:
    started: float = field(default_factory=time.monotonic)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    read: int = 0
    checked: list[str] = field(default_factory=list)


class _Damaged(Exception):
    pass


# --- barman's tools -----------------------------------------------------------------------------

def _barman_env(store: ObjectStore, work: Path) -> dict[str, str]:
    """Credentials go to a 0600 file in scratch space (removed with it), never the command line."""
    cfg = store.config
    env = {"PATH": _PATH, "LANG": "C.UTF-8", "HOME": str(work),
           "AWS_CONFIG_FILE": str(work / "aws-config"),
           "AWS_DEFAULT_REGION": cfg.region or "us-east-1"}
    (work / "aws-config").write_text("")
    if cfg.access_key and cfg.secret_key:
        path = work / "aws-credentials"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"[default]\naws_access_key_id = {cfg.access_key}\n"
                    f"aws_secret_access_key = {cfg.secret_key}\n")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(path)
    else:  # an instance role or the worker's own environment
        env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")
                    and k not in ("AWS_CONFIG_FILE",)})
    if cfg.ca_file:
        env["AWS_CA_BUNDLE"] = cfg.ca_file
    return env


def _cloud_args(store: ObjectStore) -> list[str]:
    args = ["--cloud-provider", "aws-s3"]
    if store.config.endpoint_url:
        args += ["--endpoint-url", store.config.endpoint_url]
    return args


def _source_url(store: ObjectStore) -> str:
    if store.config.scheme != "s3":
        raise AdapterError(f"{store.location} is not an S3 store: barman's cloud tools read "
                           "CloudNativePG backups from object storage only")
    return store.config.url.rstrip("/")


def _barman(tools: PostgresTools, tool: str, args: Sequence[str], store: ObjectStore,
            env: dict[str, str], hooks: Hooks) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = run([tools.barman(tool), *_cloud_args(store), *args], hooks=hooks,
               on_line=lambda ln: lines.append(ln) if len(lines) < 5000 else None, env=env,
               what=tool, grace=5.0)
    return code, lines


def _errors(lines: list[str]) -> str:
    picked = [ln for ln in lines if "ERROR" in ln or "rror" in ln] or lines[-3:]
    return one_line(" ".join(picked[-3:]), 300) or "no output"


def list_backups(store: ObjectStore, server: str, tools: PostgresTools, env: dict[str, str],
                 hooks: Hooks) -> list[dict[str, Any]]:
    code, lines = _barman(tools, "barman-cloud-backup-list",
                          ["--format", "json", _source_url(store), server], store, env, hooks)
    text = "\n".join(lines)
    if code != 0:
        raise AdapterError(f"barman-cloud-backup-list for {server} failed: {_errors(lines)}")
    try:
        start = text.index("{")
        return list(json.loads(text[start:text.rindex("}") + 1])["backups_list"])
    except (ValueError, KeyError, TypeError):
        raise AdapterError(f"barman-cloud-backup-list printed {one_line(text, 200)}") from None


def choose(backups: list[dict[str, Any]], backup_id: str | None, server: str) -> BaseBackup:
    """The named backup, or the newest that barman marks DONE."""
    done = [b for b in backups if b.get("status") == "DONE"]
    if backup_id:
        named = [b for b in backups if b.get("backup_id") == backup_id]
        if not named:
            known = ", ".join(b.get("backup_id", "?") for b in backups[-5:]) or "none"
            raise NotFound(f"{server} has no base backup {backup_id!r}; latest: {known}")
        if named[0].get("status") != "DONE":
            raise AdapterError(f"base backup {backup_id} of {server} is "
                               f"{named[0].get('status')}, not DONE: it cannot be restored")
        done = named
    if not done:
        raise NotFound(f"{server} has no completed base backup in the object store")
    chosen = max(done, key=lambda b: (str(b.get("end_time_iso") or ""), b["backup_id"]))
    version = int(chosen.get("version") or 0)
    return BaseBackup(
        backup_id=chosen["backup_id"],
        major=version // 10000 if version >= 100000 else version // 100,
        begin_wal=str(chosen.get("begin_wal") or ""),
        end_wal=str(chosen.get("end_wal") or ""),
        end_time=parse_time(chosen.get("end_time_iso") or None),
        segment_size=int(chosen.get("xlog_segment_size") or 16 << 20),
        timeline=int(chosen.get("timeline") or 1),
    )


# --- the WAL archive ----------------------------------------------------------------------------

def _segno(name: str, segment_size: int) -> int:
    per_log = 0x100000000 // segment_size
    return int(name[8:16], 16) * per_log + int(name[16:24], 16)


def _segname(tli: int, segno: int, segment_size: int) -> str:
    per_log = 0x100000000 // segment_size
    return f"{tli:08X}{segno // per_log:08X}{segno % per_log:08X}"


@dataclass(frozen=True)
class WalPlan:
    segments: tuple[str, ...]  # to fetch, in replay order
    history: tuple[str, ...]
    size: int
    newest: str


def plan_wal(store: ObjectStore, server: str, backup: BaseBackup) -> WalPlan:
    """Every segment from the backup's first onward, checked for gaps on the backup's timeline.

    Segments of later timelines (after a promotion) and their history files are fetched too;
    recovery follows ``recovery_target_timeline = latest``.
    """
    present: dict[str, int] = {}
    history: list[str] = []
    for obj in store.list(f"{server}/wals/"):
        name = obj.key.rsplit("/", 1)[-1]
        match = _SEGMENT.match(name)
        if match:
            present[name[:24]] = obj.size
        elif _HISTORY.match(name):
            history.append(name.split(".")[0] + ".history")
    size = backup.segment_size
    first = _segno(backup.begin_wal, size)
    mine = sorted(_segno(n, size) for n in present if int(n[:8], 16) == backup.timeline
                  and _segno(n, size) >= first)
    if not mine or mine[0] != first:
        raise _Damaged(f"WAL segment {backup.begin_wal}, where base backup {backup.backup_id} "
                       "starts, is missing from the archive: the backup cannot be restored")
    for before, after in zip(mine, mine[1:], strict=False):
        if after != before + 1:
            missing = _segname(backup.timeline, before + 1, size)
            raise _Damaged(
                f"WAL segment {missing} is missing from the archive (it holds "
                f"{_segname(backup.timeline, before, size)} and then "
                f"{_segname(backup.timeline, after, size)}): recovery from backup "
                f"{backup.backup_id} stops before it")
    end = _segno(backup.end_wal, size) if backup.end_wal else first
    if mine[-1] < end:
        raise _Damaged(f"WAL segment {_segname(backup.timeline, mine[-1] + 1, size)} needed to "
                       f"make backup {backup.backup_id} consistent is missing from the archive")
    later = sorted((n for n in present if int(n[:8], 16) > backup.timeline
                    and _segno(n, size) >= first), key=lambda n: (n[:8], _segno(n, size)))
    names = [_segname(backup.timeline, s, size) for s in mine] + later
    newest = max(names, key=lambda n: (int(n[:8], 16), _segno(n, size)))
    total = sum(present[n] for n in names)
    wanted_history = sorted(h for h in set(history) if int(h[:8], 16) > backup.timeline)
    return WalPlan(tuple(names), tuple(wanted_history), total, newest)


# --- the verification ---------------------------------------------------------------------------

def verify(store: ObjectStore, server: str, backup_id: str | None = None, *,
           tools: PostgresTools | None = None, checks: Sequence[SqlCheck] = DEFAULT_CHECKS,
           scratch: ScratchConfig, hooks: Hooks | None = None,
           timeout: float = RECOVERY_TIMEOUT) -> Verification:
    """Restore ``server``'s base backup (the newest by default) with barman's cloud tools,
    recover it to the end of the WAL archive in a throwaway PostgreSQL and run ``checks``.

    ``store`` is the CNPG ``destinationPath`` (``s3://bucket/path``) with its credentials;
    ``server`` is the serverName (the cluster name unless configured otherwise).
    """
    hooks = hooks or Hooks()
    tools = tools or PostgresTools()
    state = _Run()
    user = tools.server_user if os.geteuid() == 0 else None
    check_space(scratch, 0, f"verification of {server}")
    with scratch_dir(scratch) as work:
        env = _barman_env(store, work)
        backup = choose(list_backups(store, server, tools, env, hooks), backup_id, server)
        postgres, psql = tools.server(backup.major)

        def result(outcome: VerificationOutcome, problem: str = "", **details: str | int | float
                   ) -> Verification:
            return Verification(BackupKind.CNPG, server, backup.backup_id, outcome, state.at,
                                time.monotonic() - state.started, state.read,
                                tuple(state.checked), problem, details)

        try:
            wal = plan_wal(store, server, backup)
            base = sum(o.size for o in store.list(f"{server}/base/{backup.backup_id}/"))
            check_space(scratch, base * 3 + wal.size,
                        f"verification of {server} backup {backup.backup_id}")
            state.read = base + wal.size
            _restore(store, server, backup, tools, env, work, hooks)
            state.checked.append(f"base backup {backup.backup_id} restored by barman-cloud-restore")
            _fetch_wal(store, server, wal, tools, env, work, hooks)
            state.checked.append(f"{len(wal.segments)} WAL segments fetched, no gap")
        except _Damaged as exc:
            return result(VerificationOutcome.FAILED, str(exc))
        finally:
            Path(env.get("AWS_SHARED_CREDENTIALS_FILE", work / "none")).unlink(missing_ok=True)
        return _recover_and_check(work, backup, wal, postgres, psql, tools, user, checks,
                                  hooks, timeout, state, result)


def _restore(store: ObjectStore, server: str, backup: BaseBackup, tools: PostgresTools,
             env: dict[str, str], work: Path, hooks: Hooks) -> None:
    hooks.report(Progress(f"restoring base backup {backup.backup_id} (PostgreSQL "
                          f"{backup.major})", target=server, status="started"))
    data = work / "data"
    code, lines = _barman(tools, "barman-cloud-restore",
                          [_source_url(store), server, backup.backup_id, str(data)],
                          store, env, hooks)
    if code != 0:
        raise _Damaged(f"barman-cloud-restore of base backup {backup.backup_id} failed: "
                       f"{_errors(lines)}")
    missing = [p for p in ("PG_VERSION", "global/pg_control", "base") if not (data / p).exists()]
    if missing:
        raise _Damaged(f"base backup {backup.backup_id} restored without its data files (no "
                       f"{', '.join(missing)}): its data tar files are missing or damaged in the "
                       "store")


def _fetch_wal(store: ObjectStore, server: str, wal: WalPlan, tools: PostgresTools,
               env: dict[str, str], work: Path, hooks: Hooks) -> None:
    target = work / "wal"
    target.mkdir()
    names = [*wal.history, *wal.segments]
    for index, name in enumerate(names, 1):
        code, lines = _barman(tools, "barman-cloud-wal-restore",
                              [_source_url(store), server, name, str(target / name)],
                              store, env, hooks)
        if code != 0:
            raise _Damaged(f"WAL file {name} could not be fetched by barman-cloud-wal-restore: "
                           f"{_errors(lines)}")
        if index % 10 == 0 or index == len(names):
            hooks.report(Progress(f"fetched {index}/{len(names)} WAL files", target=server,
                                  status="running"))


def _server_conf(work: Path) -> str:
    sock, wal = work / "sock", work / "wal"
    settings = {
        "listen_addresses": "",
        "unix_socket_directories": str(sock),
        "unix_socket_permissions": "0700",
        "port": "5432",
        "hba_file": str(work / "pg_hba.conf"),
        "ident_file": str(work / "pg_ident.conf"),
        "archive_mode": "off",
        "archive_command": "",
        "restore_command": f'cp "{wal}/%f" "%p"',
        "recovery_target_timeline": "latest",
        "hot_standby": "off",
        "default_transaction_read_only": "on",
        "shared_preload_libraries": "",
        "ssl": "off",
        "max_connections": "10",
        "shared_buffers": "32MB",
        "logging_collector": "off",
        "log_destination": "stderr",
        "log_line_prefix": "",
    }
    return "".join(f"{k} = '{v}'\n" for k, v in settings.items())


def _prepare(work: Path, user: str | None) -> None:
    data = work / "data"
    auto = data / "postgresql.auto.conf"
    if auto.exists():
        auto.rename(data / "postgresql.auto.conf.drbot-ignored")
    (data / "standby.signal").unlink(missing_ok=True)
    (data / "recovery.signal").touch()
    (work / "sock").mkdir()
    (work / "pg.conf").write_text(_server_conf(work))
    (work / "pg_hba.conf").write_text("local all all trust\n")
    (work / "pg_ident.conf").write_text("")
    data.chmod(0o700)
    if user is not None:
        shutil.chown(work, user)
        for root, dirs, files in os.walk(work):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), *_ids(user))


def _ids(user: str) -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise AdapterError(f"user {user!r} does not exist: PostgreSQL refuses to run as root, "
                           "so create that user or set verify.postgres_user") from None
    return entry.pw_uid, entry.pw_gid


def _recover_and_check(work: Path, backup: BaseBackup, wal: WalPlan, postgres: str, psql: str,
                       tools: PostgresTools, user: str | None, checks: Sequence[SqlCheck],
                       hooks: Hooks, timeout: float, state: _Run, result: Any) -> Verification:
    if user is not None:
        _ids(user)
    _prepare(work, user)
    log = work / "postgres.log"
    argv = [postgres, "-D", str(work / "data"), "-c", f"config_file={work / 'pg.conf'}"]
    env = {"PATH": _PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    hooks.report(Progress(f"recovering to the end of the archive ({wal.newest})",
                          target=backup.backup_id, status="running"))
    ready_at = time.monotonic()
    with Throwaway(argv, log, hooks, f"the throwaway PostgreSQL {backup.major}", env=env,
                   stop_signal=signal.SIGINT, user=user) as server:
        try:
            server.wait_for(lambda: _READY in _read(log), timeout, "the end of recovery")
        except ServerExited:
            return result(VerificationOutcome.FAILED, f"PostgreSQL could not recover base backup "
                          f"{backup.backup_id}: {server.log_tail(3)}")
        rto = time.monotonic() - state.started
        text = _read(log)
        restored = set(_RESTORED.findall(text))
        if wal.newest not in restored:
            return result(VerificationOutcome.FAILED, f"recovery did not reach the end of the archive "
                          f"({wal.newest}): {_why_stopped(text, restored)}")
        recovered = _recovered_to(text) or backup.end_time
        state.checked.append(f"recovered to the end of the archive ({wal.newest}) in "
                             f"{time.monotonic() - ready_at:.0f} s")
        sock = work / "sock"
        for check in checks:
            problem = _run_check(check, psql, sock, tools.superuser, hooks)
            if problem:
                return result(VerificationOutcome.FAILED, f"check {check.name!r}: {problem}")
            state.checked.append(f"check {check.name!r} passed")
    details: dict[str, str | int | float] = {"rto_seconds": round(rto, 1),
                                              "wal_segments": len(wal.segments),
                                              "postgres_major": backup.major}
    if recovered:
        details["recovered_to"] = recovered.isoformat()
        details["rpo_seconds"] = int((state.at - recovered).total_seconds())
    return result(VerificationOutcome.OK, **details)


def _read(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _recovered_to(text: str) -> datetime | None:
    found = None
    for line in text.splitlines():
        match = _LAST_XACT.search(line)
        if match:
            try:
                found = parse_time(match[1].strip())
            except ValueError:
                continue
    return found


def _why_stopped(text: str, restored: set[str]) -> str:
    """PostgreSQL's own reason (it names the damaged segment), else where it stopped."""
    for line in reversed(text.splitlines()):
        if any(w in line for w in ("invalid", "incorrect", "unexpected", "corrupt")):
            return one_line(line.removeprefix("LOG:").strip(), 200)
    return f"it stopped after WAL segment {max(restored, default='none')}"


def _run_check(check: SqlCheck, psql: str, sock: Path, superuser: str, hooks: Hooks) -> str:
    lines: list[str] = []
    argv = [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(sock), "-p", "5432",
            "-U", superuser, "-d", check.database, "-c", "BEGIN TRANSACTION READ ONLY",
            "-c", check.query, "-c", "COMMIT"]
    code = run(argv, hooks=hooks, on_line=lines.append, env={"PATH": _PATH, "LANG": "C.UTF-8"},
               what=f"check {check.name}", grace=5.0)
    if code != 0:
        return f"the query failed: {one_line(' '.join(lines[-2:]), 200)}"
    value = lines[0].split("|")[0] if lines else ""
    if check.expect is not None and value != check.expect:
        return f"returned {value!r}, expected {check.expect!r}"
    if check.max_age_seconds is not None:
        try:
            when = parse_time(value)
        except ValueError:
            when = None
        if when is None:
            return f"returned {value!r}, not a time"
        age = (datetime.now(UTC) - when).total_seconds()
        if age > check.max_age_seconds:
            return (f"the newest data is {human_age(age)} old, more than the "
                    f"{human_age(check.max_age_seconds)} allowed")
    return ""


def human_age(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds} s"


__all__ = ["DEFAULT_CHECKS", "PostgresTools", "SqlCheck", "human", "verify"]

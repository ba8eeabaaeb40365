"""What a CNPG cluster recovered in the lab holds, and ``psql`` run against it.

Not PostgreSQL: the lab's object store holds barman's layout (backup.info, tar and WAL files)
but not a real PostgreSQL data directory, so a recovery Cluster in the lab cannot replay it.
Instead each recovered cluster gets an SQLite database seeded from the lab's world: an
``orders`` table whose newest row is as old as the server's newest archived WAL file (what a
real recovery to the end of the archive would hold) and a row count per server. Queries run
for real against it, through a read-only connection, so a check's expected value is compared
with what SQL returns; SQL beyond what SQLite and PostgreSQL share is not modelled.
(The throwaway PostgreSQL of ``/dr verify``, adapters/verify/cnpg.py, restores real barman
backups; the lab's store does not hold one.)

Output follows ``psql -X -q -A -t``: one line per row, columns joined by ``|``, times as
PostgreSQL prints a timestamptz in UTC (``2026-12-05 01:02:03+00``); an error goes to stderr as
``ERROR:  ...`` and, with ``ON_ERROR_STOP``, psql stops with exit status 1.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lab import world

ORDERS = {"pg-main": 1200, "pg-auth": 40}  # rows of orders per server (the seeded data)
PSQL_FLAGS = {"-X", "-q", "-A", "-t"}


def pg_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00")


def newest_data(server: str, now: datetime) -> datetime:
    """The newest transaction a recovery to the end of the archive replays: the time of the
    server's newest archived WAL file (lab/store.py writes it)."""
    spec = next((p for p in world.PG_CLUSTERS if p.name == server), None)
    return now - timedelta(hours=spec.last_wal_age_hours if spec else 24.0)


def seed(path: Path, server: str, now: datetime, lost: int = 0) -> None:
    """Write the recovered database of ``server`` to ``path`` (SQLite); ``lost`` newest rows
    are missing (a test's fault)."""
    total = ORDERS.get(server, 10)
    rows = max(0, total - lost)
    newest = newest_data(server, now)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, placed_at TEXT NOT NULL)")
        db.executemany("INSERT INTO orders VALUES (?, ?)", [
            (i, pg_time(newest - timedelta(minutes=total - i))) for i in range(1, rows + 1)])
    db.close()


def parse_psql(argv: list[str]) -> tuple[str, list[str]] | str:
    """(database, the -c commands) of a psql argument list, or why it is not one the lab runs."""
    if not argv or argv[0] != "psql":
        return f"lab: only psql runs in the lab's PostgreSQL pods, not {argv[:1]}"
    database, commands, rest = "postgres", [], list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if arg in PSQL_FLAGS:
            continue
        if arg in ("-v", "-d", "-c", "-U") and rest:
            value = rest.pop(0)
            if arg == "-d":
                database = value
            elif arg == "-c":
                commands.append(value)
            continue
        return f"lab: psql option {arg!r} is not modelled"
    return database, commands


def run_psql(path: Path, argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of psql ``argv`` against the recovered database."""
    parsed = parse_psql(argv)
    if isinstance(parsed, str):
        return 127, "", parsed + "\n"
    database, commands = parsed
    if database != "postgres":
        return 2, "", (f'psql: error: connection to server on socket "/controller/run/.s.PGSQL.'
                       f'5432" failed: FATAL:  database "{database}" does not exist\n')
    out: list[str] = []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # read-only, as the drill asks
    try:
        for command in commands:
            word = command.strip().upper()
            if word.startswith(("BEGIN", "COMMIT", "ROLLBACK")):
                continue  # the read-only connection stands in for the READ ONLY transaction
            try:
                rows = db.execute(command).fetchall()
            except sqlite3.Error as exc:
                return 1, "".join(out), f"ERROR:  {exc}\n"
            out += ["|".join("" if v is None else str(v) for v in row) + "\n" for row in rows]
    finally:
        db.close()
    return 0, "".join(out), ""

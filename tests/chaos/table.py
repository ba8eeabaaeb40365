"""Print the result table of `make chaos` from the rows its cases wrote (tests/chaos/effects.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str) -> int:
    file = Path(path)
    rows = [json.loads(line) for line in file.read_text().splitlines()] if file.exists() else []
    print(f"{'runbook':<20} {'worker killed right after':<38} {'outcome':<8} request held")
    for row in sorted(rows, key=lambda r: r["case"]):
        print(f"{row['case']:<20} {row['name']:<38} {row['outcome']:<8} {row['detail']}")
    failed = sum(row["outcome"] != "ok" for row in rows)
    print(f"{len(rows)} case(s), {failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""/dr audit [person|job|since]: the audit trail in chat, for admins (by the policy's rule).

One optional word selects: a job id (8 hex digits), a duration or date (30m, 24h, 7d,
2026-12-01) for everything since then, or else a person's name. The newest entries are shown,
oldest first; `drbot audit export --since` gives the whole trail as JSON lines for a SIEM.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.control import ControlContext, Reply
from bot.grammar import JOB_ID, Param, ValueKind
from bot.records.audit import is_duration, since_epoch
from bot.registry import control

SHOWN = 30
SELECTOR = ValueKind("person, job id or since", re.compile(r"[A-Za-z0-9_.:+-]{1,64}"), "alice")
DATE = re.compile(r"\d{4}-\d\d-\d\d")


def line(entry: dict[str, str]) -> str:
    at = datetime.fromtimestamp(float(entry.get("at", 0)), UTC).strftime("%Y-%m-%d %H:%M:%S")
    who = entry.get("person") or entry.get("account") or "-"
    job = f" job {entry['job']}" if entry.get("job") else ""
    detail = f": {entry['detail']}" if entry.get("detail") else ""
    return f"{at} UTC  {who}  {entry.get('action')} {entry.get('outcome')}{job}{detail}"


@control("audit", summary="the audit trail: by person, job id, or since (30m, 24h, 2026-12-01)",
         params=(Param("select", "a person, a job id, or since when (30m, 24h, 7d, 2026-12-01)",
                       kind=SELECTOR, required=False),))
def audit(ctx: ControlContext) -> Reply:
    word = str(ctx.args.get("select") or "")
    person = job = ""
    since = None
    if JOB_ID.pattern.fullmatch(word):
        job = word
    elif is_duration(word) or DATE.match(word):
        since = since_epoch(word)
    else:
        person = word
    entries = list(ctx.audit.entries(since, person=person, job=job, limit=SHOWN))
    if not entries:
        return Reply(f"no audit entries{' for ' + word if word else ''}", ephemeral=True)
    head = f"the last {len(entries)} audit entries" + (f" for {word}" if word else "")
    return Reply("\n".join([head + ", oldest first:", *map(line, entries)]), ephemeral=True)

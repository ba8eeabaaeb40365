"""The neutral status Card as Slack Block Kit, and text made safe for Slack's mrkdwn.

Slack treats `<...>` as links and mentions (`<!channel>` pings everyone), so every piece of text that
drbot did not write itself is escaped before it is posted. Sizes stay under Slack's limits: a section
holds at most 3000 characters, a context element 2000, a message about 12k characters of blocks.
"""

from __future__ import annotations

import re
import time
from typing import Any

from adapters.progress import shorten
from bot.chat.render import Card
from bot.control import JobStatus

ACTION = re.compile(r"^drbot:(approve|deny):([0-9a-f]{8})$")
SECTION_MAX = 2900
CONTEXT_MAX = 1900
STATUS = {JobStatus.PLANNING: ":mag:", JobStatus.AWAITING_APPROVAL: ":hourglass_flowing_sand:",
          JobStatus.QUEUED: ":clock3:", JobStatus.RUNNING: ":arrow_forward:",
          JobStatus.SUCCEEDED: ":white_check_mark:", JobStatus.PLANNED: ":clipboard:",
          JobStatus.FAILED: ":x:", JobStatus.CANCELLED: ":black_square_for_stop:",
          JobStatus.DENIED: ":no_entry:", JobStatus.EXPIRED: ":hourglass:", JobStatus.LOST: ":warning:",
          JobStatus.REFUSED: ":no_entry_sign:"}


def escape(text: str) -> str:
    """Slack's three control characters; after this no text can mention, link or ping."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return shorten(text, limit, "\n… (truncated)")


def action_id(verb: str, job_id: str) -> str:
    """A button's action id carries the verb and the job, so a click needs no memory of the message
    (buttons keep working after a restart)."""
    return f"drbot:{verb}:{job_id}"


def when(at: float) -> str:
    """A date every reader sees in their own time zone (Slack's date formatting), with a UTC fallback."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
    return f"<!date^{int(at)}^{{date_short_pretty}} {{time}}|{fallback}>"


def fallback_text(card: Card) -> str:
    """The message's `text`: shown in notifications and by clients that cannot render blocks."""
    return clip(escape(card.text()), SECTION_MAX)


def blocks(card: Card) -> list[dict[str, Any]]:
    status = card.status.replace("_", " ")
    head = f"{STATUS.get(card.status, ':grey_question:')} *{escape(card.title)}*\n" \
           f"job `{card.job_id}` · {escape(status)}" + \
        (f" · {escape(card.clock)}" if card.clock else "")
    out = [section(head)]
    if card.lines:
        out.append(section("\n".join(escape(line) for line in card.lines)))
    notes = []
    if card.latest:
        notes.append(f"… {escape(card.latest)}")
    if card.decided_at is not None:
        notes.append(f"decided {when(card.decided_at)}")
    if notes:
        out.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": clip(note, CONTEXT_MAX)} for note in notes]})
    if card.approvable:
        out.append(buttons(card.job_id))
    return out


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_MAX)}}


def buttons(job_id: str) -> dict[str, Any]:
    deny_confirm = {"title": {"type": "plain_text", "text": "Deny this job?"},
                    "text": {"type": "mrkdwn", "text": f"Job `{job_id}` will not run."},
                    "confirm": {"type": "plain_text", "text": "Deny"},
                    "deny": {"type": "plain_text", "text": "Keep it"}}
    return {"type": "actions", "block_id": f"drbot-decide-{job_id}", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "style": "primary",
         "action_id": action_id("approve", job_id), "value": job_id},
        {"type": "button", "text": {"type": "plain_text", "text": "Deny"}, "style": "danger",
         "action_id": action_id("deny", job_id), "value": job_id, "confirm": deny_confirm}]}

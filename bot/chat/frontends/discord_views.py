"""What drbot shows on Discord: the status card as an embed, persistent approval buttons, and text
cut to Discord's size limits (long text goes out as an attached file instead)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import ui

from adapters.progress import shorten
from bot.chat.render import Card
from bot.control import JobStatus

if TYPE_CHECKING:
    from bot.chat.frontends.discord import DiscordFrontend

CONTENT_LIMIT = 2000
DESCRIPTION_LIMIT = 4096
TITLE_LIMIT = 256
EMBED_LIMIT = 6000
CUSTOM_ID = r"drbot:(?P<verb>approve|deny):(?P<job>[0-9a-f]{8})"  # ≤ 100 characters by design

COLOURS = {JobStatus.SUCCEEDED: discord.Colour.green(), JobStatus.PLANNED: discord.Colour.green(),
           JobStatus.FAILED: discord.Colour.red(), JobStatus.LOST: discord.Colour.red(),
           JobStatus.REFUSED: discord.Colour.red(), JobStatus.DENIED: discord.Colour.dark_grey(),
           JobStatus.CANCELLED: discord.Colour.dark_grey(),
           JobStatus.EXPIRED: discord.Colour.dark_grey(),
           JobStatus.AWAITING_APPROVAL: discord.Colour.gold(), JobStatus.RUNNING: discord.Colour.blue()}


def clip(text: str, limit: int, tail: str = "…") -> str:
    return shorten(text, limit, tail)


def embed(card: Card) -> discord.Embed:
    """The status card: title, state, one line per step and the latest progress (≤ 6000 chars)."""
    clock = f" · {card.clock}" if card.clock else ""
    lines = [f"**{card.status.replace('_', ' ')}**{clock}", *card.lines]
    if card.latest:
        lines.append(f"… {card.latest}")
    description = "\n".join(lines)
    if len(description) > DESCRIPTION_LIMIT:
        more = f"\n… ({len(description) - DESCRIPTION_LIMIT} more characters: /dr job {card.job_id})"
        description = description[: DESCRIPTION_LIMIT - len(more)] + more
    found = discord.Embed(title=clip(card.title or f"job {card.job_id}", TITLE_LIMIT),
                          description=description, colour=COLOURS.get(card.status))
    found.set_footer(text=f"job {card.job_id}")
    decided = getattr(card, "decided_at", None)  # shown by Discord in the reader's time zone
    if decided:
        found.timestamp = datetime.fromtimestamp(decided, tz=UTC)
    assert len(found) <= EMBED_LIMIT
    return found


def message(text: str, name: str = "drbot.txt") -> dict[str, Any]:
    """Keyword arguments for a send: the text itself, or its start and the whole as a file."""
    if len(text) <= CONTENT_LIMIT:
        return {"content": text}
    note = "\n… (the full text is attached)"
    head = text[: CONTENT_LIMIT - len(note)].rsplit("\n", 1)[0]
    return {"content": head + note, "file": discord.File(io.BytesIO(text.encode()), filename=name)}


class Decision(ui.DynamicItem[ui.Button[Any]], template=CUSTOM_ID):
    """Approve or deny a job. The custom id carries everything, so a click works after a restart
    (the template is registered in setup_hook; no per-message state is kept)."""

    def __init__(self, verb: str, job_id: str) -> None:
        style = discord.ButtonStyle.success if verb == "approve" else discord.ButtonStyle.danger
        super().__init__(ui.Button(label=verb.capitalize(), style=style,
                                   custom_id=f"drbot:{verb}:{job_id}"))
        self.verb, self.job_id = verb, job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: ui.Item[Any],
                             match: Any, /) -> Decision:
        return cls(match["verb"], match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        frontend: DiscordFrontend = interaction.client.frontend  # type: ignore[attr-defined]
        await frontend.on_decision(interaction, self.verb, self.job_id)


def decision_view(card: Card) -> ui.View | None:
    """Approve/Deny while the job awaits approval; None removes the buttons."""
    if not card.approvable:
        return None
    view = ui.View(timeout=None)
    view.add_item(Decision("approve", card.job_id))
    view.add_item(Decision("deny", card.job_id))
    return view

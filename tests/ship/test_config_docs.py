"""docs/configuration.md documents every setting of bot.config.settings.Settings, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config.settings import SECRETS, Settings

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def documented() -> dict[str, str]:
    """First-column variables of the settings table -> the whole row."""
    rows = {}
    section = DOC.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            for name in re.findall(r"`([A-Z_]+)`", first):
                rows[name] = line
    return rows


def variables(field: str) -> list[str]:
    names = ["REDIS_URL", "DRBOT_REDIS_URL"] if field == "redis_url" else [f"DRBOT_{field.upper()}"]
    if field in SECRETS:
        names.append(f"DRBOT_{field.upper()}_FILE")
    return names


def test_every_setting_is_documented_with_its_variables() -> None:
    rows = documented()
    missing = [name for field in Settings.model_fields for name in variables(field)
               if name not in rows]
    assert missing == [], f"add these to docs/configuration.md: {missing}"


def test_nothing_documented_is_not_a_setting() -> None:
    known = {name for field in Settings.model_fields for name in variables(field)}
    assert sorted(set(documented()) - known) == []


def test_defaults_in_the_table_match_the_model() -> None:
    rows = documented()
    for field, info in Settings.model_fields.items():
        default = info.default
        if isinstance(default, (str, int, float)) and not isinstance(default, bool):
            row = rows[variables(field)[-1] if field not in SECRETS else variables(field)[0]]
            assert f"`{default}`" in row.split("|")[2], f"{field}: default {default!r} not in {row}"


def test_secrets_are_marked_as_such() -> None:
    rows = documented()
    for field in SECRETS:
        assert "(secret)" in rows[f"DRBOT_{field.upper()}"], field

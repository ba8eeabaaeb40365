"""The inventory's and the policy's JSON Schemas and their reference, generated from the models.

    python -m bot.config.reference      # rewrites docs/schema/*.json and docs/configuration.md's
                                        # generated sections

The schemas are what editors use (a `# yaml-language-server: $schema=` line in the examples) and
what the Helm chart's values.schema.json embeds; the reference tables are what a new user reads.
tests/ship/test_config_reference.py fails when either differs from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bot.config.inventory import Inventory
from bot.config.policy import PolicyFile

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
SCHEMAS = {"inventory": Inventory, "policy": PolicyFile}
BASE_URL = "https://raw.githubusercontent.com/drbot/drbot/main/docs/schema/"


def schema(name: str) -> dict[str, Any]:
    model = SCHEMAS[name]
    out = model.model_json_schema()
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["$id"] = f"{BASE_URL}{name}.schema.json"
    out["title"] = f"drbot {name}"
    return out


def schema_text(name: str) -> str:
    return json.dumps(schema(name), indent=2, sort_keys=True) + "\n"


def _type(info: Any) -> str:
    text = str(info.annotation).replace("typing.", "").replace("bot.config.inventory.", "")
    text = text.replace("bot.config.policy.", "").replace("<class '", "").replace("'>", "")
    return text.replace("NoneType", "None").replace("|", "\\|")


def _default(info: Any) -> str:
    if info.is_required():
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{json.dumps(value)}`" if value not in (None, [], {}) else "none"


def _rows(model: type[BaseModel], prefix: str, seen: list[tuple[str, type[BaseModel]]]
          ) -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        rows.append(f"| `{key}` | `{_type(info)}` | {_default(info)} | "
                    f"{_escape(info.description or '')} |")
        keyed = getattr(info.annotation, "__origin__", None) is dict
        for sub in _models(info.annotation):
            seen.append((f"{key}.<name>" if keyed else key, sub))
    return rows


def _escape(text: str) -> str:
    return text.replace("|", "/").replace("<", "&lt;").replace(">", "&gt;")


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models inside a field's type (Store | None, dict[str, Node], ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models(arg)]


def reference(name: str) -> str:
    """Markdown tables of every key, nested models in their own tables."""
    model = SCHEMAS[name]
    out: list[str] = []
    queue: list[tuple[str, type[BaseModel]]] = [("", model)]
    done: set[tuple[str, type[BaseModel]]] = set()
    while queue:
        where, sub = queue.pop(0)
        if (where, sub) in done:
            continue
        done.add((where, sub))
        title = f"`{where}` ({sub.__name__})" if where else f"top level ({sub.__name__})"
        doc = " ".join((sub.__doc__ or "").split())
        out += [f"#### {title}", "", *([doc, ""] if doc else []),
                "| key | type | default | meaning |", "|---|---|---|---|"]
        found: list[tuple[str, type[BaseModel]]] = []
        out += _rows(sub, f"{where}." if where else "", found)
        out.append("")
        queue += found
    return "\n".join(out)


def begin(name: str) -> str:
    return f"<!-- generated: {name} reference (python -m bot.config.reference) -->"


def end(name: str) -> str:
    return f"<!-- end of generated: {name} reference -->"


def documentation(text: str) -> str:
    """docs/configuration.md with its generated sections replaced by the models' reference."""
    for name in SCHEMAS:
        head, tail = begin(name), end(name)
        if head not in text:
            raise ValueError(f"docs/configuration.md lacks the marker {head}")
        before, rest = text.split(head, 1)
        after = rest.split(tail, 1)[1]
        text = f"{before}{head}\n\n{reference(name)}\n{tail}{after}"
    return text


def main() -> int:
    (DOCS / "schema").mkdir(exist_ok=True)
    for name in SCHEMAS:
        (DOCS / "schema" / f"{name}.schema.json").write_text(schema_text(name))
    page = DOCS / "configuration.md"
    page.write_text(documentation(page.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

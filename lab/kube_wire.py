"""What the Kubernetes API server says and accepts on the wire, as the lab's emulator needs it:
timestamps, meta/v1 Status bodies, JSON (RFC 6902) and merge patches, label and field selectors.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# Marks the lab's own requests (its controllers', the Eviction API's deletes), so the lab can
# leave them out of what clients did.
CONTROLLER_HEADER = "X-Drbot-Lab-Controller"


def now_iso() -> str:
    """A Kubernetes timestamp (RFC 3339, seconds, Z)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None, ok: bool = False
) -> dict[str, Any]:
    """A meta/v1 Status object as the API server sends it."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if ok else "Failure",
        "code": code,
    }
    if not ok:
        body["message"] = message
        body["reason"] = reason
    if details:
        body["details"] = details
    return body


# ------------------------------------------------------------------------------ patches


def merge_diff(old: Any, new: Any) -> Any:
    """The JSON merge patch that turns `old` into `new` (kmock applies merge patches only)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    diff: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            diff[key] = copy.deepcopy(value)
        elif old[key] != value:
            diff[key] = merge_diff(old[key], value)
    return diff


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    for part in parts[:-1]:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def json_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply an RFC 6902 patch (add, remove, replace, test, copy, move); ValueError if it fails."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _pointer(op["path"])
        try:
            parent = _parent(doc, parts)
            key = parts[-1]
            kind = op["op"]
            if kind == "test":
                current = parent[int(key)] if isinstance(parent, list) else parent[key]
                if current != op.get("value"):
                    raise ValueError(f"test failed at {op['path']}")
            elif kind == "remove":
                del parent[int(key) if isinstance(parent, list) else key]
            elif kind in ("add", "replace", "copy", "move"):
                if kind in ("copy", "move"):
                    src = _pointer(op["from"])
                    holder = _parent(doc, src)
                    value = holder[int(src[-1])] if isinstance(holder, list) else holder[src[-1]]
                    if kind == "move":
                        del holder[int(src[-1]) if isinstance(holder, list) else src[-1]]
                else:
                    value = op["value"]
                if isinstance(parent, list):
                    if key == "-":
                        parent.append(value)
                    elif kind == "replace":
                        parent[int(key)] = value
                    else:
                        parent.insert(int(key), value)
                else:
                    if kind == "replace" and key not in parent:
                        raise KeyError(key)
                    parent[key] = copy.deepcopy(value)
            else:
                raise ValueError(f"unknown op {kind!r}")
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"the path {op['path']!r} does not exist ({exc})") from exc
    return doc


# ---------------------------------------------------------------------------- selectors

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in [*parts, cur] if p.strip()]


def _term_matches(term: str, get: Callable[[str], str | None]) -> bool:
    found = _SET_RE.match(term)
    if found:
        key, op, values = found.groups()
        members = {v.strip() for v in values.split(",")}
        value = get(key)
        return (value in members) if op == "in" else (value not in members)
    for op in ("!=", "==", "="):
        if op in term:
            key, _, value = term.partition(op)
            current = get(key.strip())
            return (current != value.strip()) if op == "!=" else (current == value.strip())
    if term.startswith("!"):
        return get(term[1:].strip()) is None
    return get(term) is not None


def _field(obj: dict[str, Any], path: str) -> str | None:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return "" if path != "metadata.name" else None
        cur = cur[part]
    return cur if isinstance(cur, str) else json.dumps(cur)


def selected(obj: dict[str, Any], labels: str | None, fields: str | None) -> bool:
    """True if the object matches a labelSelector and a fieldSelector (Kubernetes syntax)."""
    meta_labels = obj.get("metadata", {}).get("labels") or {}
    for term in _split_selector(labels or ""):
        if not _term_matches(term, meta_labels.get):
            return False
    return all(
        _term_matches(term, lambda key: _field(obj, key)) for term in _split_selector(fields or "")
    )


def attrs_patch(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch semantics (None deletes), as kmock applies them."""
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = attrs_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result

"""Render the Helm chart offline (helm-python-sdk, the Helm v4 SDK) into a list of manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).parents[2] / "helm" / "drbot"
IMAGE = "registry.example/drbot"


def with_image(values: dict[str, Any] | None) -> dict[str, Any]:
    """The values plus image.repository, which has no default (no published image exists)."""
    values = dict(values or {})
    values["image"] = {"repository": IMAGE, **values.get("image", {})}
    return values


def render(values: dict[str, Any] | None = None, name: str = "drbot",
           namespace: str = "drbot") -> dict[str, list[dict[str, Any]]]:
    """Template path -> the manifests it rendered (empty documents dropped)."""
    import helm_python

    rendered = helm_python.Chart.load(str(CHART)).render(with_image(values), name=name,
                                                          namespace=namespace)
    return {path: [d for d in yaml.safe_load_all(text) if d]
            for path, text in rendered.items() if path.endswith((".yaml", ".yml"))}


def manifests(values: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    return [doc for docs in render(values, **kw).values() for doc in docs]


def find(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(matches) == 1, f"expected one {kind} *{suffix}, got {[m['metadata']['name'] for m in matches]}"
    return matches[0]

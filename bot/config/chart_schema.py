"""The Helm chart's values.schema.json, generated from its values.yaml and the models.

Every mapping of values.yaml becomes an object that refuses unknown keys (so `worker.replica: 3`
is a typo Helm names, not a silently ignored value) and every scalar keeps its default's type (so
`redis.bundled: "no"` is refused); Kubernetes passthrough blocks (resources, affinity, env, ...)
stay free-form; `config.policy` and `config.inventory` are the policy's and the inventory's own
schemas. Helm validates values against it on install, upgrade, template and lint.

    python -m bot.config.chart_schema    # rewrites helm/drbot/values.schema.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from bot.config import reference

CHART = Path(__file__).parents[2] / "helm" / "drbot"
# Keys whose contents belong to Kubernetes or to the user: any object (or list) is fine.
FREE = {"env", "podAnnotations", "nodeSelector", "affinity", "tolerations", "resources",
        "annotations", "labels", "secretKeys", "extraVolumes", "extraVolumeMounts",
        "imagePullSecrets", "podSecurityContext", "securityContext", "from", "metricsFrom", "tls"}
EMBEDDED = {("config", "policy"): "policy", ("config", "inventory"): "inventory"}
TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}
MINIMUM = {("worker", "replicas"): 0, ("http", "port"): 1, ("slackHttp", "port"): 1}


def _embedded(name: str, defs: dict[str, Any]) -> dict[str, Any]:
    """A model's schema, its $defs moved to the root under a prefix (refs rewritten)."""
    schema = reference.schema(name)
    for key, value in schema.pop("$defs", {}).items():
        defs[f"{name}.{key}"] = value
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    text = json.dumps(schema).replace('"#/$defs/', f'"#/$defs/{name}.')
    for key in [k for k in defs if k.startswith(f"{name}.")]:
        defs[key] = json.loads(json.dumps(defs[key]).replace('"#/$defs/',
                                                             f'"#/$defs/{name}.'))
    return dict(json.loads(text))


def _node(value: Any, path: tuple[str, ...], defs: dict[str, Any]) -> dict[str, Any]:
    if path[-2:] in EMBEDDED:
        return _embedded(EMBEDDED[path[-2:]], defs)
    if path and path[-1] in FREE:
        return {"type": "array"} if isinstance(value, list) else {"type": "object"}
    if isinstance(value, dict):
        return {"type": "object", "additionalProperties": False,
                "properties": {k: _node(v, (*path, k), defs) for k, v in value.items()}}
    if isinstance(value, list):
        return {"type": "array"}
    if value is None:
        return {}
    node: dict[str, Any] = {"type": TYPES[type(value)]}
    if path[-2:] in MINIMUM:
        node["minimum"] = MINIMUM[path[-2:]]
    return node


def schema() -> dict[str, Any]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    defs: dict[str, Any] = {}
    out = _node(values, (), defs)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "drbot Helm chart values"
    out["$defs"] = defs
    return out


def text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    (CHART / "values.schema.json").write_text(text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

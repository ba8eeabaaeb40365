"""The configuration explains itself: the JSON Schemas in docs/schema and the reference tables in
docs/configuration.md are what the models generate today; every key has a description; the
examples validate (models, schemas and check-config's semantics) and the example playbooks pass
`ansible-playbook --syntax-check`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from bot import registry
from bot.config import checks, reference
from bot.config.inventory import load_inventory
from bot.config.policy import Policy
from tests.support import ansible_syntax_check

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("name", sorted(reference.SCHEMAS))
def test_published_schema_is_the_models(name: str) -> None:
    published = (ROOT / "docs" / "schema" / f"{name}.schema.json").read_text()
    assert published == reference.schema_text(name), "run `python -m bot.config.reference`"


def test_configuration_reference_is_the_models() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert reference.documentation(page) == page, "run `python -m bot.config.reference`"
    assert "| `iac.ansible.fetch_snapshots_playbook` |" in page
    assert "| `nodes.<name>.ssh_port` | `int` | `22` |" in page


def models(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = [model]
    for info in model.model_fields.values():
        for sub in reference._models(info.annotation):
            found += [m for m in models(sub) if m not in found]
    return found


@pytest.mark.parametrize("name", sorted(reference.SCHEMAS))
def test_every_key_is_explained(name: str) -> None:
    bare = [f"{m.__name__}.{field}" for m in models(reference.SCHEMAS[name])
            for field, info in m.model_fields.items()
            if not info.description and not reference._models(info.annotation)]
    assert bare == [], "give these fields a description"


@pytest.mark.parametrize(("name", "load"), [("inventory", load_inventory),
                                             ("policy", Policy.load)])
def test_examples_validate(name: str, load: Any) -> None:
    path = EXAMPLES / f"{name}.yaml"
    first = path.read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema=../docs/schema/{name}.schema.json"
    load(path)
    schema = json.loads((ROOT / "docs" / "schema" / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))


def test_the_schema_refuses_what_the_model_refuses() -> None:
    schema = reference.schema("inventory")
    bad = yaml.safe_load((EXAMPLES / "inventory.yaml").read_text())
    bad["nodes"]["k3s-agent-1"]["role"] = "worker"
    with pytest.raises(jsonschema.ValidationError, match="'worker' is not one of"):
        jsonschema.validate(bad, schema)
    bad = yaml.safe_load((EXAMPLES / "inventory.yaml").read_text())
    bad["iac"]["ansible"]["playbook"] = "site.yml"  # a key that does not exist
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.validate(bad, schema)


def test_example_policy_passes_check_config_semantics() -> None:
    policy = Policy.load(EXAMPLES / "policy.yaml")
    commands = [n for n, spec in registry.load().items() if not spec.system]
    assert checks.policy_problems(policy.data, "policy", commands) == []
    assert checks.inventory_problems(load_inventory(EXAMPLES / "inventory.yaml"), "inv") == []


@pytest.mark.parametrize("playbook", ["site.yml", "k3s-join.yml", "etcd-fetch.yml"])
def test_example_playbooks_pass_the_syntax_check(playbook: str, tmp_path: Path) -> None:
    done = ansible_syntax_check(EXAMPLES / "playbooks" / playbook, tmp_path)
    assert done.returncode == 0, done.stderr

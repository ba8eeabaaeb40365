"""The lab's data files (lab/data): the playbooks are Ansible's to read, the lab copies them
into its IaC repository as they are, and drbot loads the policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import registry
from bot.config.policy import PolicyFile
from lab import files
from tests.support import ansible_syntax_check

PLAYBOOKS = sorted(src for src in files.IAC_FILES if src.endswith(".yml"))


def test_every_playbook_the_lab_runs_is_a_data_file() -> None:
    assert PLAYBOOKS == ["ansible/etcd-fetch.yml", "ansible/k3s-join.yml", "ansible/site.yml"]


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_passes_ansibles_syntax_check(playbook: str, tmp_path: Path) -> None:
    done = ansible_syntax_check(files.DATA / playbook, tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_broken_playbook_fails_the_syntax_check(tmp_path: Path) -> None:
    """The check above can fail: a task with two actions is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text("- hosts: all\n  tasks:\n    - ansible.builtin.ping:\n"
                      "      ansible.builtin.debug: {msg: x}\n")
    assert ansible_syntax_check(broken, tmp_path).returncode != 0


def test_the_iac_repository_gets_the_data_files_unchanged(tmp_path: Path) -> None:
    files.copy_iac_files(tmp_path)
    for source, dest in files.IAC_FILES.items():
        assert (tmp_path / dest).read_bytes() == (files.DATA / source).read_bytes(), dest
    assert (tmp_path / ".gitignore").read_text().splitlines()[0] == "*.tfstate"


def test_the_policy_loads_names_real_commands_and_the_runner() -> None:
    policy = files.policy("dana")
    model = PolicyFile.model_validate(policy)  # as drbot loads it: unknown keys are refused
    # every command it names exists (tests register more, so the registry may hold others)
    assert set(model.commands) - set(registry.load()) == set()
    assert {"restore", "rebuild-node", "rebuild-cluster", "status"} <= set(model.commands)
    assert "console:dana" in policy["people"]["alice"]["accounts"]
    assert "console:bob" not in files.policy("bob")["people"]["alice"]["accounts"]

"""handlers/iac.py, the runbooks' Terraform, Ansible and SSH helpers, without the lab.

Terraform and Ansible are replaced at the project's own adapter interface (``adapters.terraform``
``check_backend``/``check_revision``/``plan``/``apply_plan``, ``adapters.ansible.run_playbook``);
SSH is a real sshd on 127.0.0.1 read with the real ``ssh-keyscan`` and ``ssh-keygen``. What is
checked is what a rebuild's safety rests on: only inventory entries reach a tool (names from chat
only select them), Terraform plans the inventory's addresses as ``-target`` and never
``-replace`` or ``-destroy`` and applies that plan's file, the intent is in the job before the
first plan and a retry adopts it, the SSH tools
get a whitelisted environment, a rebuilt machine's old host key is dropped for the job, and errors
are one line that says what to check."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adapters import ansible, terraform
from adapters.ansible import AnsibleConfig, PlaybookResult
from adapters.errors import AdapterError, Cancelled, Refused, TimedOut
from adapters.progress import Hooks, Progress
from adapters.terraform import (
    ApplyResult,
    ChangeSummary,
    PlannedChange,
    PlanResult,
    TerraformConfig,
)
from bot.config.inventory import Inventory
from bot.errors import CommandError, ConfigError
from bot.runbook import StepContext
from handlers import iac
from lab.servers import dead_port
from tests.sshd_server import Sshd, keygen
from tests.support import PROMPT, Recorder, wait_until

ADDRESSES = ['proxmox_virtual_environment_vm.k3s["n1"]', 'proxmox_virtual_environment_vm.k3s["n2"]']


def make_inventory(tmp_path: Path, with_iac: bool = True, **ssh: tuple[str, int]) -> Inventory:
    """Nodes n1 (ssh_address set) and n2 (reached at its ansible_host); ``ssh`` overrides a
    node's (address, port)."""
    nodes: dict[str, Any] = {
        "n1": {"host": "pve1", "vmid": 101, "role": "server", "cluster_init": True,
               "terraform_address": ADDRESSES[0], "ansible_host": "k3s-n1",
               "ssh_address": "10.0.0.11"},
        "n2": {"host": "pve1", "vmid": 102, "role": "agent", "terraform_address": ADDRESSES[1],
               "ansible_host": "127.0.0.1"},
    }
    for name, (address, port) in ssh.items():
        nodes[name].update(ssh_address=address, ssh_port=port)
    data: dict[str, Any] = {"nodes": nodes}
    if with_iac:
        data["iac"] = {
            "terraform": {"dir": str(tmp_path / "tf"), "revision": "a" * 40},
            "ansible": {"dir": str(tmp_path / "ansible"), "inventory": "hosts.yml",
                        "revision": "b" * 40, "extravars": {"k3s_version": "v1.30.4+k3s1",
                                                            "k3s_cluster_init": True}},
        }
    return Inventory.model_validate(data)


@dataclass
class FakeServices:
    """The worker's Services as a runbook sees them: the inventory and the tools' configs."""

    inventory: Inventory
    terraform_refusal: ConfigError | None = None
    ansible: AnsibleConfig = field(default_factory=lambda: AnsibleConfig(
        "/srv/ansible", "hosts.yml", extravars={"k3s_version": "v1.30.4+k3s1",
                                                "k3s_cluster_init": True}))

    @property
    def terraform(self) -> TerraformConfig:
        if self.terraform_refusal is not None:
            raise self.terraform_refusal
        tf = self.inventory.iac.terraform  # type: ignore[union-attr]
        return TerraformConfig(tf.dir, revision=tf.revision)


@dataclass
class Job:
    """A step's view of its job record: what ``intent`` wrote into it, in order."""

    recorded: dict[str, Any] = field(default_factory=dict)
    journal: list[tuple[str, Any]] = field(default_factory=list)
    rec: Recorder = field(default_factory=Recorder)

    def step(self, inventory: Inventory, name: str = "terraform apply",
             services: Any = None) -> StepContext:
        return StepContext(job_id="j42", step=name, results={}, hooks=self.rec.hooks,
                           services=services or FakeServices(inventory), inventory=inventory,
                           recorded=dict(self.recorded),
                           record=lambda key, value: self.journal.append((key, value)))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """handlers.iac's clock, set by the test: progress shows elapsed seconds, ids the time."""
    now = SimpleNamespace(monotonic=100.0, time=1_733_385_600.123456)
    monkeypatch.setattr(iac, "time", SimpleNamespace(monotonic=lambda: now.monotonic,
                                                     time=lambda: now.time, sleep=time.sleep))
    return now


# -- inventory ----------------------------------------------------------------------------------


def test_a_name_from_chat_only_selects_an_inventory_node(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    assert iac.inventory_node(inventory, "n2") is inventory.nodes["n2"]
    with pytest.raises(CommandError) as refused:
        iac.inventory_node(inventory, "n1 -oProxyCommand=sh")
    assert str(refused.value) == ("n1 -oProxyCommand=sh is not a node of the inventory; known "
                                  "nodes: n1, n2")


def test_an_inventory_without_nodes_says_so() -> None:
    with pytest.raises(CommandError) as refused:
        iac.inventory_node(Inventory.model_validate({}), "n1")
    assert str(refused.value) == ("n1 is not a node of the inventory; known nodes: none (the "
                                  "inventory lists no nodes)")


def test_the_job_keeps_its_files_under_the_ansible_artifacts(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    assert iac.job_dir(inventory, "j42") == str(tmp_path / "ansible" / "artifacts" / "drbot-j42")
    assert iac.known_hosts_file(inventory, "j42") == str(
        tmp_path / "ansible" / "artifacts" / "drbot-j42" / "known_hosts")


def test_no_iac_section_is_a_one_line_refusal(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path, with_iac=False)
    with pytest.raises(CommandError) as refused:
        iac.job_dir(inventory, "j42")
    assert str(refused.value) == (
        "the inventory has no `iac` section (Terraform and Ansible projects); this command "
        "needs it: add it, see the README's inventory example")


# -- revision -----------------------------------------------------------------------------------


def test_the_revision_names_both_checkouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = make_inventory(tmp_path)
    checked: list[tuple[str, str | None]] = []
    commits = {str(tmp_path / "tf"): "1" * 40, str(tmp_path / "ansible"): None}

    def check_revision(config: TerraformConfig) -> str | None:
        checked.append((config.workdir, config.revision))
        return commits[config.workdir]
    monkeypatch.setattr(terraform, "check_revision", check_revision)
    assert iac.revision(FakeServices(inventory)) == f"terraform@{'1' * 40} ansible@not-a-checkout"
    # the Ansible checkout is held to its own pinned revision, not Terraform's
    assert checked == [(str(tmp_path / "tf"), "a" * 40), (str(tmp_path / "ansible"), "b" * 40)]
    commits.update({str(tmp_path / "tf"): None, str(tmp_path / "ansible"): "2" * 40})
    assert iac.revision(FakeServices(inventory)) == f"terraform@not-a-checkout ansible@{'2' * 40}"


def test_a_refused_checkout_stops_the_revision(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def check_revision(config: TerraformConfig) -> str:
        raise Refused(f"{config.workdir} has uncommitted changes: main.tf")
    monkeypatch.setattr(terraform, "check_revision", check_revision)
    with pytest.raises(Refused, match="uncommitted changes"):
        iac.revision(FakeServices(make_inventory(tmp_path)))


def test_unreadable_terraform_secrets_are_a_refusal(tmp_path: Path) -> None:
    services = FakeServices(make_inventory(tmp_path), terraform_refusal=ConfigError(
        "iac.terraform: /etc/drbot/tf.env is not readable; fix its permissions"))
    with pytest.raises(CommandError) as refused:
        iac.revision(services)
    assert type(refused.value) is CommandError
    assert str(refused.value) == "iac.terraform: /etc/drbot/tf.env is not readable; fix its permissions"
    with pytest.raises(CommandError, match="no `iac` section"):
        iac.revision(FakeServices(make_inventory(tmp_path, with_iac=False)))


# -- progress -----------------------------------------------------------------------------------


def test_progress_names_the_step_its_target_and_the_elapsed_time(tmp_path: Path,
                                                                  clock: SimpleNamespace) -> None:
    job = Job()
    step = job.step(make_inventory(tmp_path), "ansible join")
    hooks = iac.timed(step, "n2")
    clock.monotonic = 107.9
    hooks.report(Progress("TASK [k3s : join]", status="running"))
    hooks.report(Progress("ok", target="k3s-n2", host="k3s-n2"))
    untargeted = iac.timed(step)
    untargeted.report(Progress("started"))
    assert job.rec.progress == [
        Progress("ansible join [n2] +7s: TASK [k3s : join]", target="n2", status="running"),
        Progress("ansible join [k3s-n2] +7s: ok", target="k3s-n2", host="k3s-n2"),
        Progress("ansible join +0s: started")]


def test_timed_hooks_keep_the_steps_cancel_and_spawn(tmp_path: Path) -> None:
    spawned: list[int] = []
    step = Job().step(make_inventory(tmp_path))
    step.hooks = Hooks(cancelled=lambda: True, spawned=spawned.append)
    hooks = iac.timed(step, "n1")
    assert hooks.cancelled() is True
    hooks.spawned(4242)
    assert spawned == [4242]


def test_say_reports_one_line_with_its_target_and_status(tmp_path: Path) -> None:
    job = Job()
    iac.say(job.step(make_inventory(tmp_path)), "VM 102 is already gone", "n2", "done")
    iac.say(job.step(make_inventory(tmp_path)), "nothing left to restore")
    assert job.rec.progress == [Progress("VM 102 is already gone", target="n2", status="done"),
                                Progress("nothing left to restore")]


# -- Terraform ----------------------------------------------------------------------------------


PLAN_FILE = "terraform-apply.tfplan"


@pytest.fixture
def tf(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Terraform at its adapter interface: the calls in order, with their arguments. The plan
    creates what it targets (tests/handlers/test_terraform_checked_plan.py runs the real
    lab terraform, refusals included)."""
    calls: list[tuple[str, Any]] = []

    def check_backend(config: TerraformConfig) -> str:
        calls.append(("check_backend", config.workdir))
        return "s3"

    def plan(config: TerraformConfig, *, targets: Any = (), replace: Any = (),
             destroy: bool = False, out: str | None = None, hooks: Hooks) -> PlanResult:
        calls.append(("plan", {"workdir": config.workdir, "targets": targets,
                               "replace": replace, "destroy": destroy, "out": out}))
        assert out is not None
        Path(out).write_text("plan")
        return PlanResult([PlannedChange(t, "create") for t in targets],
                          ChangeSummary(add=len(targets)))

    def apply_plan(config: TerraformConfig, plan_file: str, *, hooks: Hooks) -> ApplyResult:
        assert Path(plan_file).read_text() == "plan"
        calls.append(("apply_plan", plan_file))
        hooks.report(Progress("Creating...", target=ADDRESSES[0]))
        hooks.report(Progress("Apply complete"))
        return ApplyResult(ChangeSummary(add=2, change=3, remove=5, imported=7),
                           resources=list(ADDRESSES), outputs={})
    monkeypatch.setattr(terraform, "check_backend", check_backend)
    monkeypatch.setattr(terraform, "plan", plan)
    monkeypatch.setattr(terraform, "apply_plan", apply_plan)
    return calls


def test_apply_plans_the_inventory_addresses_then_applies_that_plan(
        tmp_path: Path, tf: list[tuple[str, Any]], clock: SimpleNamespace) -> None:
    """Targets from the inventory, never -replace or -destroy; the plan file in the job's own
    folder (not the shared checkout), applied as it is and removed afterwards."""
    job = Job()
    inventory = make_inventory(tmp_path)
    result = iac.terraform_apply(job.step(inventory), ADDRESSES)
    plan_file = os.path.join(iac.job_dir(inventory, "j42"), PLAN_FILE)
    assert tf == [("check_backend", str(tmp_path / "tf")),
                  ("plan", {"workdir": str(tmp_path / "tf"), "targets": ADDRESSES,
                            "replace": (), "destroy": False, "out": plan_file}),
                  ("apply_plan", plan_file)]
    assert not os.path.exists(plan_file)
    assert result == {"added": 2, "changed": 3, "destroyed": 5, "imported": 7,
                      "resources": ADDRESSES, "earlier_attempt": False}
    both = ", ".join(ADDRESSES)
    assert job.rec.progress == [
        Progress(f"terraform apply [{ADDRESSES[0]}] +0s: Creating...", target=ADDRESSES[0]),
        Progress(f"terraform apply [{both}] +0s: Apply complete", target=both)]


def test_the_intent_is_in_the_job_before_the_plan_and_the_apply(
        tmp_path: Path, tf: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    job = Job()
    plan = terraform.plan

    def plan_after_intent(config: TerraformConfig, **kw: Any) -> PlanResult:
        assert job.journal == [("apply", {"targets": ADDRESSES})], "planned before the intent"
        return plan(config, **kw)
    monkeypatch.setattr(terraform, "plan", plan_after_intent)
    iac.terraform_apply(job.step(make_inventory(tmp_path)), ADDRESSES)
    assert [name for name, _ in tf] == ["check_backend", "plan", "apply_plan"]


def test_a_refused_backend_applies_nothing_and_records_no_intent(
        tmp_path: Path, tf: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    def local_state(config: TerraformConfig) -> str:
        raise Refused("Terraform state is local; configure a remote backend")
    monkeypatch.setattr(terraform, "check_backend", local_state)
    job = Job()
    with pytest.raises(Refused):
        iac.terraform_apply(job.step(make_inventory(tmp_path)), ADDRESSES)
    assert tf == []
    assert job.journal == []


def test_a_retry_adopts_the_earlier_attempts_apply(tmp_path: Path, tf: list[tuple[str, Any]],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker died after Terraform created the VMs: the retry plans again, finds nothing to
    do and applies nothing, and the summary still says this job created them."""
    def nothing_left(config: TerraformConfig, **kw: Any) -> PlanResult:
        tf.append(("plan", kw["targets"]))
        return PlanResult([PlannedChange(a, "noop") for a in kw["targets"]], ChangeSummary())
    monkeypatch.setattr(terraform, "plan", nothing_left)
    job = Job(recorded={"apply": {"targets": ADDRESSES}})
    result = iac.terraform_apply(job.step(make_inventory(tmp_path)), ADDRESSES)
    assert job.journal == []  # the recorded intent is kept, not written again
    assert tf[-1] == ("plan", ADDRESSES)
    assert "apply_plan" not in [name for name, _ in tf]
    assert result["earlier_attempt"] is True and result["added"] == 0
    assert iac.counted(result, "added") == "added by an earlier attempt of this job"
    assert iac.counted(result, "destroyed") == "destroyed by an earlier attempt of this job"


@pytest.mark.parametrize(("result", "text"), [
    ({"added": 2, "earlier_attempt": False}, "2 added"),
    ({"added": 0, "earlier_attempt": False}, "0 added"),
    ({"earlier_attempt": False}, "0 added"),
    ({}, "0 added"),
    ({"added": 1, "earlier_attempt": True}, "1 added"),  # the retry created one more itself
    ({"earlier_attempt": True}, "added by an earlier attempt of this job"),
])
def test_counted_tells_what_the_whole_job_did(result: dict[str, Any], text: str) -> None:
    assert iac.counted(result, "added") == text


# -- Ansible ------------------------------------------------------------------------------------


def test_join_extravars_come_from_the_inventory(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    assert iac.join_extravars(inventory, None) == {"k3s_cluster_init": False}
    assert iac.join_extravars(inventory, "n1") == {
        "k3s_cluster_init": False, "k3s_join_server": "k3s-n1", "k3s_join_address": "10.0.0.11"}
    assert iac.join_extravars(inventory, "n2") == {
        "k3s_cluster_init": False, "k3s_join_server": "127.0.0.1", "k3s_join_address": "127.0.0.1"}


@pytest.fixture
def playbooks(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Ansible at its adapter interface: each run's arguments."""
    runs: list[dict[str, Any]] = []

    def run_playbook(config: AnsibleConfig, playbook: str, **kw: Any) -> PlaybookResult:
        runs.append({"config": config, "playbook": playbook, **kw})
        kw["hooks"].report(Progress("TASK [k3s : join]", status="running"))
        return PlaybookResult("successful", 0, {"changed": {"k3s-n2": 4, "k3s-n9": 1},
                                                "ok": {"k3s-n2": 9}}, [])
    monkeypatch.setattr(ansible, "run_playbook", run_playbook)
    return runs


def test_a_playbook_runs_on_the_inventory_hosts_with_the_jobs_known_hosts(
        tmp_path: Path, playbooks: list[dict[str, Any]], clock: SimpleNamespace) -> None:
    inventory = make_inventory(tmp_path)
    job = Job()
    services = FakeServices(inventory)
    step = job.step(inventory, "ansible join", services)
    result = iac.run_playbook(step, "k3s-join.yml", ["k3s-n2", "k3s-n3"],
                              iac.join_extravars(inventory, "n1"), reset=["k3s-n2"])
    (run,) = playbooks
    directory = str(tmp_path / "ansible" / "artifacts" / "drbot-j42")
    assert run["playbook"] == "k3s-join.yml"
    assert run["limit"] == "k3s-n2:k3s-n3"
    assert run["known_hosts_reset"] == ["k3s-n2"]
    assert run["artifact_dir"] == directory
    assert run["known_hosts"] == os.path.join(directory, "known_hosts")
    # one ident per run (ansible-runner keeps a run's artifacts under it): step and milliseconds
    assert run["ident"] == "ansible-join-1733385600123"
    # the step's variables win over the inventory's, and the worker's own config is left as it was
    assert run["config"].extravars == {"k3s_version": "v1.30.4+k3s1", "k3s_cluster_init": False,
                                       "k3s_join_server": "k3s-n1",
                                       "k3s_join_address": "10.0.0.11"}
    assert services.ansible.extravars == {"k3s_version": "v1.30.4+k3s1", "k3s_cluster_init": True}
    assert run["config"].inventory == "hosts.yml"
    assert result == {"playbook": "k3s-join.yml", "hosts": ["k3s-n2", "k3s-n3"],
                      "status": "successful", "changed": {"k3s-n2": 4, "k3s-n3": 0}}
    assert job.rec.progress == [Progress("ansible join [k3s-n2,k3s-n3] +0s: TASK [k3s : join]",
                                         target="k3s-n2,k3s-n3", status="running")]


def test_a_playbook_with_nothing_to_reset_resets_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    playbooks: list[dict[str, Any]] = []

    def unreachable(config: AnsibleConfig, playbook: str, **kw: Any) -> PlaybookResult:
        playbooks.append({"config": config, **kw})  # no host got as far as a change
        return PlaybookResult("failed", 4, {"dark": {"k3s-n1": 1}}, [])
    monkeypatch.setattr(ansible, "run_playbook", unreachable)
    inventory = make_inventory(tmp_path)
    result = iac.run_playbook(Job().step(inventory, "site"), "site.yml", ["k3s-n1"], {})
    assert result == {"playbook": "site.yml", "hosts": ["k3s-n1"], "status": "failed",
                      "changed": {"k3s-n1": 0}}
    assert playbooks[0]["known_hosts_reset"] == []
    assert playbooks[0]["limit"] == "k3s-n1"
    assert playbooks[0]["config"].extravars == {"k3s_version": "v1.30.4+k3s1",
                                                "k3s_cluster_init": True}


# -- SSH ----------------------------------------------------------------------------------------


def test_ssh_endpoints_come_from_the_inventory(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path, n2=("", 2222))
    assert iac.ssh_endpoint(inventory, "n1") == iac.SshEndpoint("n1", "10.0.0.11", 22)
    assert iac.ssh_endpoint(inventory, "n2") == iac.SshEndpoint("n2", "127.0.0.1", 2222)
    # how ssh files them in known_hosts: a bare address on port 22, else [address]:port
    assert iac.SshEndpoint("n1", "10.0.0.11", 22).known_name == "10.0.0.11"
    assert iac.SshEndpoint("n2", "127.0.0.1", 2222).known_name == "[127.0.0.1]:2222"


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    server = make_sshd(tmp_path, "sshd")
    server.start()
    yield server
    server.stop()


def make_sshd(tmp_path: Path, name: str) -> Sshd:
    root = tmp_path / name
    root.mkdir()
    return Sshd(root)


def key_line(server: Sshd) -> str:
    """The known_hosts line of the server's host key, as ssh-keyscan prints it."""
    kind, blob = server.host_key.with_suffix(".pub").read_text().split()[:2]
    return f"[127.0.0.1]:{server.port} {kind} {blob}"


def a_key_line(path: Path, name: str) -> str:
    """A known_hosts line for ``name`` with a fresh key (one the machine no longer serves)."""
    keygen(path)
    kind, blob = path.with_suffix(".pub").read_text().split()[:2]
    return f"{name} {kind} {blob}"


def fingerprint(server: Sshd) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(server.host_key.with_suffix(".pub"))],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def endpoint(server: Sshd, node: str = "n2") -> iac.SshEndpoint:
    return iac.SshEndpoint(node, "127.0.0.1", server.port)


def test_a_banner_is_what_tells_ssh(sshd: Sshd) -> None:
    assert iac.ssh_banner(endpoint(sshd)) is True
    assert iac.ssh_banner(iac.SshEndpoint("n2", "127.0.0.1", dead_port())) is False
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def greet() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        server = threading.Thread(target=greet, daemon=True)
        server.start()
        assert iac.ssh_banner(iac.SshEndpoint("n2", "127.0.0.1", port)) is False
        server.join(PROMPT)


def test_pinning_keeps_the_served_key_and_drops_the_old_one(tmp_path: Path, sshd: Sshd) -> None:
    inventory = make_inventory(tmp_path)
    known_hosts = Path(iac.known_hosts_file(inventory, "j42"))
    other = a_key_line(tmp_path / "other", "[127.0.0.1]:1")
    stale = a_key_line(tmp_path / "stale", f"[127.0.0.1]:{sshd.port}")
    known_hosts.parent.mkdir(parents=True)
    known_hosts.write_text(f"{other}\n{stale}\n")
    assert iac.pin_host_key(Job().step(inventory), endpoint(sshd)) == [fingerprint(sshd)]
    assert known_hosts.read_text().splitlines() == [other, key_line(sshd)]
    assert not Path(f"{known_hosts}.old").exists()  # ssh-keygen -R's backup, stale key and all


def test_pinning_a_machine_that_is_down_changes_nothing(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    down = iac.SshEndpoint("n2", "127.0.0.1", dead_port())
    assert iac.pin_host_key(Job().step(inventory), down) == []
    assert not Path(iac.job_dir(inventory, "j42")).exists()


def test_a_first_contact_makes_a_private_known_hosts(tmp_path: Path, sshd: Sshd) -> None:
    inventory = make_inventory(tmp_path)
    iac.pin_host_key(Job().step(inventory), endpoint(sshd))
    directory = Path(iac.job_dir(inventory, "j42"))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "known_hosts").stat().st_mode) == 0o600
    assert (directory / "known_hosts").read_text() == key_line(sshd) + "\n"


def test_a_known_hosts_ssh_keygen_rejects_is_a_one_line_error(tmp_path: Path, sshd: Sshd) -> None:
    inventory = make_inventory(tmp_path)
    known_hosts = Path(iac.known_hosts_file(inventory, "j42"))
    known_hosts.parent.mkdir(parents=True)
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} garbage\n")
    with pytest.raises(AdapterError) as failed:
        iac.pin_host_key(Job().step(inventory), endpoint(sshd))
    text = str(failed.value)
    assert text.startswith(f"could not remove the old SSH key of n2 from {known_hosts}: ")
    assert "invalid line" in text
    assert "\n" not in text
    assert "\\n" not in text  # ssh-keygen's words, not the repr of its bytes
    assert known_hosts.read_text() == f"[127.0.0.1]:{sshd.port} garbage\n"


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ssh-keyscan and ssh-keygen first on PATH as wrappers that keep each call's argument list
    and environment, then run the real tool; the worker's environment holds secrets."""
    calls = tmp_path / "calls"
    calls.mkdir()
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    for tool in ("ssh-keyscan", "ssh-keygen"):
        real = shutil.which(tool)
        assert real is not None, f"{tool} is not installed (Debian openssh-client)"
        script = wrappers / tool
        script.write_text(f"#!/bin/sh\nf=$(mktemp -p {calls} {tool}.XXXXXX)\n"
                          f"printf '%s\\n' \"$@\" > \"$f.argv\"\nenv > \"$f.env\"\n"
                          f"exec {real} \"$@\"\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrappers}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DRBOT_SIGNING_KEY", "signing-secret-1")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-secret-2@127.0.0.1:6379/0")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-3")
    return calls


def tool_calls(calls: Path, tool: str) -> list[tuple[list[str], str]]:
    found = sorted(calls.glob(f"{tool}.*.argv"), key=lambda p: p.stat().st_mtime_ns)
    return [(p.read_text().splitlines(), p.with_suffix(".env").read_text()) for p in found]


def test_the_ssh_tools_get_inventory_arguments_and_no_secrets(tmp_path: Path, sshd: Sshd,
                                                              tools: Path) -> None:
    inventory = make_inventory(tmp_path)
    known_hosts = Path(iac.known_hosts_file(inventory, "j42"))
    known_hosts.parent.mkdir(parents=True)
    known_hosts.write_text("")
    iac.pin_host_key(Job().step(inventory), endpoint(sshd))
    scans = tool_calls(tools, "ssh-keyscan")
    keygens = tool_calls(tools, "ssh-keygen")
    assert [argv for argv, _ in scans] == [["-T", "5", "-p", str(sshd.port), "127.0.0.1"]]
    assert [argv for argv, _ in keygens] == [
        ["-R", f"[127.0.0.1]:{sshd.port}", "-f", str(known_hosts)], ["-lf", "-"]]
    for _, env in scans + keygens:
        assert f"PATH={os.environ['PATH']}\n" in env
        for secret in ("DRBOT_SIGNING_KEY", "signing-secret-1", "redis-secret-2",
                       "xoxb-secret-3"):
            assert secret not in env


def test_fingerprints_of_several_keys(tmp_path: Path) -> None:
    lines = [a_key_line(tmp_path / "one", "10.0.0.11"), a_key_line(tmp_path / "two", "10.0.0.12")]
    expected = sorted(subprocess.run(["ssh-keygen", "-lf", str(tmp_path / name)], capture_output=True,
                                     text=True, check=True).stdout.split()[1]
                      for name in ("one.pub", "two.pub"))
    assert iac.fingerprints(lines) == expected


def test_fingerprints_of_nothing_runs_nothing(tools: Path) -> None:
    assert iac.fingerprints([]) == []
    assert tool_calls(tools, "ssh-keygen") == []


def test_rebuilt_machines_are_waited_for_and_their_new_keys_trusted(tmp_path: Path,
                                                                    sshd: Sshd) -> None:
    """n1 boots late (its sshd starts only after n1 was polled and did not answer); both are
    waited for; each one's old key is dropped and its new one trusted for this job."""
    inventory = make_inventory(tmp_path)
    late = make_sshd(tmp_path, "late")
    polls: list[int] = []
    lock = threading.Lock()

    def boot_late() -> bool:  # polled once per round by each wait
        with lock:
            polls.append(1)
            if len(polls) == 3:  # n2 answered at its first poll: this is n1's second
                late.start()
        return False
    known_hosts = Path(iac.known_hosts_file(inventory, "j42"))
    known_hosts.parent.mkdir(parents=True)
    known_hosts.write_text(a_key_line(tmp_path / "old", f"[127.0.0.1]:{sshd.port}") + "\n")
    job = Job()
    job.rec = Recorder(cancel_when=boot_late)
    try:
        trusted = iac.wait_for_ssh(job.step(inventory, "wait for SSH"),
                                   [endpoint(late, "n1"), endpoint(sshd, "n2")], timeout=3600)
    finally:
        late.stop()
    assert trusted == {"n1": [fingerprint(late)], "n2": [fingerprint(sshd)]}
    assert sorted(known_hosts.read_text().splitlines()) == sorted([key_line(late), key_line(sshd)])
    assert [(p.target, p.status) for p in job.rec.progress] == [
        ("n1", "waiting"), ("n2", "waiting"), ("n1", "ready"), ("n2", "ready")]
    assert job.rec.progress[0].message.endswith(
        f": waiting for SSH on n1 (127.0.0.1:{late.port})")
    assert job.rec.progress[3].message.endswith(
        f": n2 answers SSH; host key {fingerprint(sshd)} accepted for this job")
    assert job.rec.progress[3].message.startswith("wait for SSH [n2] +")


def test_a_machine_that_never_answers_is_a_one_line_timeout(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    port = dead_port()
    with pytest.raises(TimedOut) as failed:
        iac.wait_for_ssh(Job().step(inventory, "wait for SSH"),
                         [iac.SshEndpoint("n2", "127.0.0.1", port)], timeout=0)
    assert str(failed.value) == (
        f"n2 did not answer SSH on 127.0.0.1:{port} within 0s after Terraform created its VM. "
        "Check the VM's console in Proxmox (boot, network, cloud-init)")
    assert not Path(iac.job_dir(inventory, "j42")).exists()


def test_a_cancelled_wait_stops_at_once(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    job = Job()
    job.rec = Recorder(cancel_when=lambda: True)
    with pytest.raises(Cancelled) as stopped:
        iac.wait_for_ssh(job.step(inventory, "wait for SSH"),
                         [iac.SshEndpoint("n2", "127.0.0.1", dead_port())], timeout=3600)
    assert str(stopped.value) == ("stopped waiting for SSH on n2; the VM is left running as "
                                  "Terraform created it")


def test_one_failed_machine_stops_the_other_waits(tmp_path: Path, sshd: Sshd) -> None:
    """n2 answers but its key cannot be filed; the wait for n1 (which never answers, within an
    hour) must end with it rather than hold the step for that hour."""
    inventory = make_inventory(tmp_path)
    known_hosts = Path(iac.known_hosts_file(inventory, "j42"))
    known_hosts.parent.mkdir(parents=True)
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} garbage\n")
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            iac.wait_for_ssh(Job().step(inventory, "wait for SSH"),
                             [endpoint(sshd, "n2"),
                              iac.SshEndpoint("n1", "127.0.0.1", dead_port())], timeout=3600)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)
    waiting = threading.Thread(target=wait, daemon=True)
    waiting.start()
    wait_until(lambda: not waiting.is_alive(), PROMPT, "the other wait to stop")
    (error,) = outcome
    assert isinstance(error, AdapterError)
    assert str(error).startswith("could not remove the old SSH key of n2")

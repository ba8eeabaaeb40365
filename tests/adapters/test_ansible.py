"""Ansible adapter with the real ansible-runner and ansible-core, locally and over a real sshd."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters import ansible, ansible_tasks, subprocesses
from adapters.ansible import AnsibleConfig, HostFailure
from adapters.errors import Cancelled, NotFound, TimedOut, Unreachable
from lab.servers import dead_port
from tests.sshd_server import Sshd
from tests.support import PROMPT, Recorder, wait_until

PROJECT = str(Path(__file__).parent / "data" / "ansible" / "project")


def local_config(tmp_path: Path, **kw: object) -> AnsibleConfig:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    return AnsibleConfig(project_dir=PROJECT, inventory=str(inventory), **kw)  # type: ignore[arg-type]


def run(cfg: AnsibleConfig, playbook: str, tmp_path: Path, rec: Recorder, **kw: object):  # noqa: ANN201
    return ansible.run_playbook(
        cfg, playbook, limit=str(kw.pop("limit", "localhost")), hooks=rec.hooks,
        artifact_dir=str(tmp_path / "artifacts"), ident=uuid.uuid4().hex, **kw,  # type: ignore[arg-type]
    )


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_success_reports_whitelisted_progress_only(tmp_path: Path) -> None:
    secret = "hunter2-" + uuid.uuid4().hex
    cfg = local_config(tmp_path, extravars={"secret_value": secret}, envvars={"DR_TOKEN": secret})
    seen: list[tuple[int, bool, str]] = []

    def spawned(pid: int) -> None:
        stat = subprocesses.proc_stat(pid)
        # Popen returns once exec has begun, a moment before the kernel fills in the cmdline.
        command = wait_until(lambda: cmdline(pid), 10, f"the command line of {pid}")
        seen.append((pid, stat is not None and stat.session == pid, command))

    rec = Recorder()
    rec.hooks.spawned = spawned
    result = run(cfg, "ok.yml", tmp_path, rec)
    assert result.status == "successful" and result.rc == 0
    assert result.failures == []
    assert result.stats["ok"] == {"localhost": 3} and result.stats["skipped"] == {"localhost": 1}
    # Both pids are reported, each the leader of its own session, and both are gone now: the
    # process that runs the playbook, then ansible-playbook itself.
    assert [p for p, leader, _ in seen if leader] == [p for p, _, _ in seen]
    assert "adapters.ansible_run" in seen[0][2] and "ansible-playbook" in seen[1][2]
    assert not any(subprocesses.alive(p) for p, _, _ in seen)
    assert not any(secret in cmd for _, _, cmd in seen)
    statuses = {(p.task, p.status) for p in rec.progress if p.host == "localhost"}
    assert ("show the password", "ok") in statuses
    assert ("skipped task", "skipped") in statuses
    assert any(p.status == "recap" and "ok=3" in p.message for p in rec.progress)
    # The secret was in a fact, a debug result and a command's stdout: none of it is reported.
    assert secret not in rec.text()
    assert secret not in repr(AnsibleConfig(PROJECT, "inv", envvars={"DR_TOKEN": secret}))
    # Nor is it left on disk next to the artifacts (no events, no stdout, no command+env file).
    for path in (tmp_path / "artifacts").rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


def test_failing_task_names_host_and_task(tmp_path: Path) -> None:
    rec = Recorder()
    with pytest.raises(ansible.PlaybookFailed) as err:
        run(local_config(tmp_path), "fail.yml", tmp_path, rec)
    assert not isinstance(err.value, Unreachable)
    failure = HostFailure("localhost", "install k3s", "k3s install script exited with 1")
    assert err.value.result.failures == [failure]
    assert err.value.result.status == "failed"
    assert "localhost" in str(err.value) and "install k3s" in str(err.value)
    assert ("first task works", "changed") in {(p.task, p.status) for p in rec.progress}
    assert any(p.status == "failed" and p.host == "localhost" for p in rec.progress)


def test_unreachable_host(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"ghost ansible_host=127.0.0.1 ansible_port={dead_port()} ansible_user=root "
        f"ansible_connection=ssh ansible_python_interpreter={sys.executable}\n"
    )
    cfg = AnsibleConfig(project_dir=PROJECT, inventory=str(inventory))
    rec = Recorder()
    with pytest.raises(ansible.HostsUnreachable) as err:
        run(cfg, "ping.yml", tmp_path, rec, limit="ghost")
    assert isinstance(err.value, Unreachable) and err.value.temporary
    [failure] = err.value.result.failures
    assert failure.host == "ghost" and failure.task == "ping over ssh"
    assert "Connection refused" in failure.message
    assert any(p.status == "unreachable" and p.host == "ghost" for p in rec.progress)


def test_broken_playbook_reports_ansibles_error(tmp_path: Path) -> None:
    with pytest.raises(ansible.PlaybookFailed) as err:
        run(local_config(tmp_path), "broken.yml", tmp_path, Recorder())
    assert "no_such_module_xyz" in str(err.value) and "exit 4" in str(err.value)
    assert err.value.result.failures == []


def test_missing_playbook_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        run(local_config(tmp_path), "nope.yml", tmp_path, Recorder())


def _sleeper_tree(rec: Recorder, snapshot: set[int]) -> bool:
    """True once `sleep 300` runs under the recorded ansible-playbook; remembers the tree."""
    if not rec.pids:
        return False
    tree = subprocesses.tree(rec.pids[0])
    if any(cmdline(p).startswith("sleep 300") for p in tree):
        snapshot |= tree
        return True
    return False


def test_cancel_ends_the_whole_tree(tmp_path: Path) -> None:
    snapshot: set[int] = set()
    asked: list[float] = []
    rec = Recorder()

    def cancelled() -> bool:
        if not asked and _sleeper_tree(rec, snapshot):
            asked.append(time.monotonic())
        return bool(asked)

    rec.hooks.cancelled = cancelled
    with pytest.raises(Cancelled):
        run(local_config(tmp_path), "sleep.yml", tmp_path, rec)
    assert asked and time.monotonic() - asked[0] < PROMPT  # not the 300 s of the sleep
    assert len(snapshot) >= 3  # ansible-playbook, its worker, the command, sleep
    assert [p for p in snapshot if subprocesses.alive(p)] == []


def processes_running(command: str) -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit() and cmdline(int(e.name)).strip() == command]


def test_cancel_also_ends_what_the_playbook_detached(tmp_path: Path) -> None:
    """An async task double-forks out of the playbook's tree; the cancel ends it all the same."""
    detached = f"sleep {random.randint(10_000, 99_999)}"
    rec = Recorder()
    escaped: list[int] = []
    in_playbook_tree: list[bool] = []

    def cancelled() -> bool:
        if not escaped and len(rec.pids) == 2:  # the runner process, then ansible-playbook
            playbook_tree = subprocesses.tree(rec.pids[1])
            found = processes_running(detached)
            if found and any(cmdline(p).startswith("sleep 300") for p in playbook_tree):
                escaped.extend(found)
                in_playbook_tree.append(bool(set(found) & playbook_tree))
        return bool(escaped)

    rec.hooks.cancelled = cancelled
    cfg = local_config(tmp_path, extravars={"nap": detached.split()[1]})
    with pytest.raises(Cancelled):
        run(cfg, "detach.yml", tmp_path, rec)
    assert escaped, "the async task never started"
    assert in_playbook_tree == [False]  # it had left the playbook's own process tree
    assert processes_running(detached) == []


def test_timeout_ends_the_whole_tree(tmp_path: Path) -> None:
    seen: set[int] = set()
    rec = Recorder()

    def cancelled() -> bool:  # polled about once a second: note the tree as it grows
        if rec.pids:
            seen.update(subprocesses.tree(rec.pids[0]))
        return False

    rec.hooks.cancelled = cancelled
    started = time.monotonic()
    with pytest.raises(TimedOut):
        run(local_config(tmp_path, timeout=4), "sleep.yml", tmp_path, rec)
    assert time.monotonic() - started < PROMPT  # not the 300 s of the sleep
    assert rec.pids and seen, "the pid was not reported before the timeout"
    assert [p for p in seen | subprocesses.tree(rec.pids[0]) if subprocesses.alive(p)] == []


WORKER = """
import sys
from adapters import ansible
from adapters.progress import Hooks
cfg = ansible.AnsibleConfig(project_dir=sys.argv[1], inventory=sys.argv[2],
                            extravars={"gate": sys.argv[3], "done": sys.argv[4]})
pids = open(sys.argv[5], "a")
def spawned(pid):
    pids.write(f"{pid}\\n")
    pids.flush()
ansible.run_playbook(cfg, "gate.yml", limit="localhost", hooks=Hooks(spawned=spawned),
                     artifact_dir=sys.argv[6], ident="gate")
"""


def test_the_playbook_outlives_a_worker_that_dies(tmp_path: Path) -> None:
    """A dead worker does not hang its playbook up half way: it runs on to its end, so the
    recorded pids stay alive until then (what makes /dr retry wait for it)."""
    cfg = local_config(tmp_path)
    gate, done, pid_file = tmp_path / "gate", tmp_path / "done", tmp_path / "pids"
    worker = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", WORKER, PROJECT, cfg.inventory, str(gate), str(done),
         str(pid_file), str(tmp_path / "artifacts")])
    try:
        pids = wait_until(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2
                          and [int(p) for p in pid_file.read_text().split()], 60, "both pids")
    finally:
        worker.kill()
        worker.wait()
    assert all(subprocesses.alive(p) for p in pids)
    gate.touch()
    wait_until(done.exists, 60, "the playbook to go through the gate after its worker died")
    assert done.read_text() == "done\n"
    wait_until(lambda: not any(subprocesses.alive(p) for p in pids), 30, "the playbook to end")


# ---------------------------------------------------------------------------------------------
# SSH host keys with a real sshd


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    root = tmp_path / "sshd"
    root.mkdir()
    server = Sshd(root)
    server.start()
    yield server
    server.stop()


def known_blobs(path: Path) -> list[str]:
    lines = [ln.split() for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return [parts[2] for parts in lines]


def test_known_hosts_reset_after_a_rebuild(tmp_path: Path, sshd: Sshd) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"node3 ansible_host=127.0.0.1 ansible_port={sshd.port} ansible_user=root "
        f"ansible_connection=ssh ansible_python_interpreter={sys.executable}\n"
    )
    cfg = AnsibleConfig(project_dir=PROJECT, inventory=str(inventory),
                        private_key_file=str(sshd.client_key),
                        envvars={"ANSIBLE_PIPELINING": "True"})  # one ssh connection per task
    known_hosts = tmp_path / "artifacts" / "known_hosts"
    old_key = sshd.public_blob()

    run(cfg, "ping.yml", tmp_path, Recorder(), limit="node3")  # first contact: key accepted
    assert known_blobs(known_hosts) == [old_key]

    sshd.stop()  # the VM is rebuilt: same address, new host key
    new_key = sshd.new_host_key()
    sshd.start()

    with pytest.raises(ansible.HostsUnreachable) as err:
        run(cfg, "ping.yml", tmp_path, Recorder(), limit="node3")
    assert "IDENTIFICATION HAS CHANGED" in err.value.result.failures[0].message
    assert known_blobs(known_hosts) == [old_key]

    result = run(cfg, "ping.yml", tmp_path, Recorder(), limit="node3", known_hosts_reset=["node3"])
    assert result.status == "successful"
    assert known_blobs(known_hosts) == [new_key]
    assert not Path(str(known_hosts) + ".old").exists()


def test_the_playbook_sees_only_a_whitelisted_environment(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    key, password = "k-" + uuid.uuid4().hex, "p-" + uuid.uuid4().hex
    monkeypatch.setenv("DRBOT_SIGNING_KEY", key)
    monkeypatch.setenv("REDIS_URL", f"redis://:{password}@127.0.0.1:6379/0")
    monkeypatch.setenv("DRBOT_SLACK_BOT_TOKEN", "xoxb-" + key)
    monkeypatch.setenv("ANSIBLE_NOCOLOR", "1")  # the operator's own Ansible settings pass
    out = tmp_path / "env.txt"
    cfg = local_config(tmp_path, extravars={"out": str(out)}, envvars={"DR_GIVEN": "yes"})
    assert run(cfg, "env.yml", tmp_path, Recorder()).status == "successful"
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert not {"DRBOT_SIGNING_KEY", "REDIS_URL", "DRBOT_SLACK_BOT_TOKEN"} & set(seen)
    assert key not in out.read_text() and password not in out.read_text()
    assert seen["DR_GIVEN"] == "yes" and seen["ANSIBLE_NOCOLOR"] == "1" and "PATH" in seen
    for path in (tmp_path / "artifacts").rglob("*"):  # nothing secret left in the job folder
        if path.is_file():
            text = path.read_text(errors="replace")
            assert key not in text and password not in text, path


LISTING = """
playbook: site.yml

  play #1 (k3s_servers): install k3s\tTAGS: []
    pattern: ['k3s_servers']
    hosts (2):
      s1
      s2
    tasks:
      wait for SSH\tTAGS: []
      k3s : install\tTAGS: [k3s]
      k3s : start\tTAGS: [k3s]

  play #2 (s1): first server only\tTAGS: []
    pattern: ['s1']
    hosts (1):
      s1
    tasks:
      fetch the kubeconfig\tTAGS: []

  play #3 (nobody): no host matched\tTAGS: []
    pattern: ['nobody']
    hosts (0):
    tasks:
      never\tTAGS: []
"""


def test_the_listing_is_read_as_tasks_per_host() -> None:
    assert ansible_tasks.parse(LISTING) == {"s1": 4, "s2": 3}
    assert ansible_tasks.parse("") == {}


def test_progress_counts_the_hosts_tasks_done_of_its_total(tmp_path: Path) -> None:
    """The totals come from ansible-playbook's own listing (run beside the playbook); the gate
    holds the first counted task until they are known. Fact gathering and the notified
    handler are not in the listing, and are not counted."""
    gate, done = tmp_path / "gate", tmp_path / "done"
    cfg = local_config(tmp_path, extravars={"gate": str(gate), "done": str(done)})
    rec = Recorder()
    outcome: list[object] = []
    runner = threading.Thread(target=lambda: outcome.append(run(cfg, "count.yml", tmp_path, rec)))
    runner.start()
    try:
        wait_until(lambda: any(p.status == "planned" for p in rec.progress), 120,
                   "the listing's totals")
    finally:
        gate.touch()
        runner.join(120)
    assert outcome and outcome[0].status == "successful"  # type: ignore[attr-defined]
    lines = [p.message for p in rec.progress if p.host == "localhost"]
    assert "localhost: 3 tasks to run" in lines
    assert [m for m in lines if m.endswith(" tasks)")] == [
        "localhost: wait for the gate: ok (1/3 tasks)",
        "localhost: change something: changed (2/3 tasks)",
        "localhost: last: ok (3/3 tasks)"]
    assert "localhost: Gathering Facts: ok" in lines and "localhost: a handler: ok" in lines

"""/dr rebuild-node end to end: console requests, a real worker, the simulated homelab.

alice requests, bob approves (rebuild-node needs one admin approval). The lab's Terraform is
wrapped by a recording stub (`recorded_terraform`) that logs every argv and, while a gate file
exists, holds its VM creation (with the state lock taken) until the gate is removed.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.subprocesses import kill_tree
from bot.records import signals
from lab import Lab, schemas, terraform_stub
from lab.servers import dead_port
from lab.world import LonghornVersion
from tests.bot.harness import Harness, wait_until

RUN = 120.0  # a whole rebuild on a loaded two-core machine; each wait ends on its condition
PROJECT = Path(__file__).resolve().parents[2]


# -- helpers ------------------------------------------------------------------------------------


def node_object(lab: Lab, name: str) -> dict[str, Any] | None:
    return lab.world.kube_object("v1", "nodes", None, name)


def lh_node(lab: Lab, name: str) -> dict[str, Any] | None:
    return lab.world.kube_object("longhorn.io/v1beta2", "nodes", "longhorn-system", name)


def is_ready(lab: Lab, name: str) -> bool:
    node = node_object(lab, name)
    conditions = (node or {}).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def crash(lab: Lab, name: str) -> None:
    """The VM dies and Kubernetes notices (the Node turns NotReady)."""
    lab.world.crash_vm(name)
    wait_until(lambda: node_object(lab, name) and not is_ready(lab, name), 20,
               f"{name} NotReady")


def requested(drbot: Harness, text: str) -> str:
    """alice asks; the job waits for approval (its preflight passed)."""
    reply = drbot.say(text, who="alice")
    assert reply.ok and reply.job_id, reply.text
    job = drbot.wait_status(reply.job_id, "awaiting_approval", "refused", timeout=60)
    assert job.status == "awaiting_approval", job.error
    return reply.job_id


def approved(drbot: Harness, job_id: str) -> str:
    reply = drbot.say(f"/dr approve {job_id}", who="bob")
    assert reply.ok, reply.text
    return job_id


def retried(drbot: Harness, job_id: str) -> str:
    """alice retries; rebuild-node's approval is asked again and bob gives it (a retry is a new
    request for the policy). Returns the retry's answer."""
    reply = drbot.say(f"/dr retry {job_id}", who="alice")
    assert reply.ok, reply.text
    assert "needs approval again" in reply.text
    approved(drbot, job_id)
    return reply.text


def refusal(drbot: Harness, text: str) -> str:
    """The job is refused at planning; returns what the thread says."""
    reply = drbot.say(text, who="alice")
    assert reply.ok and reply.job_id, reply.text
    job = drbot.wait_status(reply.job_id, "refused", "awaiting_approval", timeout=60)
    assert job.status == "refused", f"{text} was not refused: {job.status}"
    return said(drbot, reply.job_id, "refused")


def said(drbot: Harness, job_id: str, needle: str) -> str:
    """The first reply in the job's thread containing ``needle`` (the relay may lag a bit)."""
    return drbot.wait_reply(job_id, needle, timeout=60)


def step(drbot: Harness, job_id: str, name: str) -> Any:
    return next(s for s in drbot.job(job_id).steps if s.name == name)


def wait_step(drbot: Harness, job_id: str, name: str, *statuses: str, timeout: float = RUN) -> None:
    wait_until(lambda: step(drbot, job_id, name).status in statuses or drbot.job(job_id).terminal,
               timeout, f"step {name} of job {job_id} to be {'/'.join(statuses)}")
    job = drbot.job(job_id)
    assert step(drbot, job_id, name).status in statuses, f"job {job.status}: {job.error}"


def requests_to(lab: Lab, method: str, suffix: str) -> int:
    return sum(1 for m, path, _ in lab.world.pve_requests() if m == method and path.endswith(suffix))


def core_api(lab: Lab) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(lab.kubeconfig)))


def job_files(lab: Lab, job_id: str) -> Path:
    assert lab.paths is not None
    return lab.paths.ansible / "artifacts" / f"drbot-{job_id}"


def known_hosts(lab: Lab, job_id: str) -> str:
    path = job_files(lab, job_id) / "known_hosts"
    return path.read_text() if path.exists() else ""


@dataclass
class RecordedTerraform:
    log: Path
    gate: Path

    def runs(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def applies(self) -> list[list[str]]:
        return [argv for argv in self.runs() if argv[:1] == ["apply"]]

    def hold(self) -> None:
        self.gate.touch()

    def held(self) -> bool:
        return Path(str(self.gate) + ".reached").exists()

    def release(self) -> None:
        self.gate.unlink(missing_ok=True)


WRAPPER = '''#!{python}
"""The lab's terraform, recording its argv; holds VM creation while {gate} exists."""
import json, os, sys, time
sys.path.insert(0, {project!r})
with open({log!r}, "a") as out:
    out.write(json.dumps(sys.argv[1:]) + "\\n")
from lab import terraform_stub
real = terraform_stub.Proxmox.create
def create(self, vm, smbios):
    if os.path.exists({gate!r}):
        open({gate!r} + ".reached", "w").close()
        while os.path.exists({gate!r}):
            time.sleep(0.05)
    return real(self, vm, smbios)
terraform_stub.Proxmox.create = create
sys.exit(terraform_stub.main())
'''


@pytest.fixture
def recorded_terraform(lab: Lab) -> Iterator[RecordedTerraform]:
    """Point the inventory's Terraform binary at a recording wrapper of the lab's stub."""
    assert lab.paths is not None
    recorded = RecordedTerraform(lab.workdir / "terraform-argv.jsonl", lab.workdir / "tf-gate")
    wrapper = lab.workdir / "bin" / "terraform-recorded"
    wrapper.write_text(WRAPPER.format(python=sys.executable, project=str(PROJECT),
                                      log=str(recorded.log), gate=str(recorded.gate)))
    wrapper.chmod(0o755)
    inventory = yaml.safe_load(lab.inventory_path.read_text())
    inventory["iac"]["terraform"]["binary"] = str(wrapper)
    lab.inventory_path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    yield recorded
    recorded.release()


def lab_state(lab: Lab) -> dict[str, Any]:
    """What a dry run must not change: VMs, Nodes, Longhorn Nodes, the etcd members."""
    state: dict[str, Any] = {"vms": lab.world.vms(), "etcd": lab.world.etcd_members()}
    for name in lab.world.vms():
        state[f"node/{name}"] = node_object(lab, name)
        state[f"lhnode/{name}"] = lab.world.kube_object("longhorn.io/v1beta2", "nodes",
                                                         "longhorn-system", name)
    return state


def mutations(lab: Lab) -> list[str]:
    kube = [f"{r.method} {r.path}" for r in lab.world.kube_requests()
            if r.method not in ("GET", "HEAD")]
    pve = [f"{m} {p}" for m, p, _ in lab.world.pve_requests() if m not in ("GET", "HEAD")]
    return kube + pve


# -- tests --------------------------------------------------------------------------------------


def test_refused_by_each_preflight_and_a_dry_run_changes_nothing(drbot_lab: Harness,
                                                                 lab: Lab) -> None:
    before = lab_state(lab)
    job_id = drbot_lab.say("/dr rebuild-node k3s-server-3 --dry-run", who="alice").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "planned", timeout=60)
    plan = said(drbot_lab, job_id, "Plan (dry run)")
    for target in ("node k3s-server-3", "VM 103 on pve2",
                   'proxmox_virtual_environment_vm.k3s["k3s-server-3"]'):
        assert target in plan
    assert "still Ready" in plan and "(destructive)" in plan
    assert "Preflight passes now" in said(drbot_lab, job_id, "dry run: nothing was changed")
    assert lab_state(lab) == before
    assert mutations(lab) == []

    text = refusal(drbot_lab, "/dr rebuild-node k3s-agent-1")
    assert "last healthy replica" in text and "apps/media" in text and "/dr restore" in text

    text = refusal(drbot_lab, "/dr rebuild-node k3s-agent-2")
    assert "drbot's own worker or Redis" in text

    reply = drbot_lab.say("/dr rebuild-node k3s-nope", who="alice")  # refused at submit: no job
    assert not reply.ok and reply.job_id is None
    assert "no node k3s-nope in the inventory" in reply.text and "k3s-server-1" in reply.text

    crash(lab, "k3s-server-3")
    text = refusal(drbot_lab, "/dr rebuild-node k3s-server-2")
    assert "etcd would lose quorum" in text and "/dr rebuild-node k3s-server-3" in text

    crash(lab, "k3s-server-2")
    text = refusal(drbot_lab, "/dr rebuild-node k3s-server-2")
    assert "etcd has lost quorum" in text and "k3s server --cluster-reset" in text
    assert "On k3s-server-1" in text
    assert mutations(lab) == []  # refusals change nothing either


@pytest.mark.parametrize("lab", list(LonghornVersion), indirect=True, ids=str)
def test_rebuilds_a_crashed_server_while_a_second_rebuild_is_refused(drbot_lab: Harness,
                                                                     lab: Lab) -> None:
    """On every Longhorn version: up to v1.9 nothing refuses deleting a Longhorn Node, from
    v1.10 its webhook does until the node is gone, unschedulable and empty (lab.world)."""
    old_uid = node_object(lab, "k3s-server-3")["metadata"]["uid"]  # type: ignore[index]
    old_lh = lh_node(lab, "k3s-server-3")["metadata"]["uid"]  # type: ignore[index]
    old_member = next(m for m in lab.world.etcd_members() if m.node == "k3s-server-3")
    crash(lab, "k3s-server-3")
    job_id = approved(drbot_lab, requested(drbot_lab, "/dr rebuild-node k3s-server-3"))
    drbot_lab.wait_status(job_id, "running", "succeeded", "failed", timeout=60)

    second = drbot_lab.say("/dr rebuild-node k3s-server-2", who="alice")
    assert not second.ok and f"etcd is held by job {job_id}" in second.text

    job = drbot_lab.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=RUN)
    assert job.status == "succeeded", job.error
    node = node_object(lab, "k3s-server-3")
    assert node and node["metadata"]["uid"] != old_uid and is_ready(lab, "k3s-server-3")
    member = next(m for m in lab.world.etcd_members() if m.node == "k3s-server-3")
    assert member.id != old_member.id and member.healthy
    assert requests_to(lab, "DELETE", "/qemu/103") == 1
    assert requests_to(lab, "POST", "/nodes/pve2/qemu") == 1
    volumes = {v: lab.world.kube_object("longhorn.io/v1beta2", "volumes", "longhorn-system", v)
               for v in step(drbot_lab, job_id, "wait for replicas").result["healthy"]}
    assert volumes and all(v["status"]["robustness"] == "healthy" for v in volumes.values())
    # Longhorn's rebuild progress went to the Engines, and is gone from them once done
    rebuilds: dict[str, list[int]] = {}
    for event in lab.world.events():
        if found := re.search(r" longhorn: rebuild of (\S+) at (\d+)%$", event):
            rebuilds.setdefault(found[1], []).append(int(found[2]))
    assert rebuilds and all(p == sorted(set(p)) for p in rebuilds.values()), rebuilds
    engines = lab.world.kube_objects("longhorn.io/v1beta2", "engines")
    assert not [e for e in engines if (e.get("status") or {}).get("rebuildStatus")]
    assert [p for e in engines for p in schemas.problems(
        {**e, "apiVersion": "longhorn.io/v1beta2", "kind": "Engine"})] == []
    progress = [e.message for e in drbot_lab.rt.events.read(job_id) if e.type == "progress"]
    assert not [m for m in progress if re.search(r"\bpvc-[0-9a-f]{4}", m)], \
        "progress names a volume by its pvc-<uuid> instead of namespace/pvc"
    drbot_lab.wait_settled(job_id)
    final = drbot_lab.frontend.replies(job_id)[-1]
    assert "k3s-server-3 rebuilt and Ready" in final and "etcd 3/3" in final
    assert "steps: cordon" in final and "terraform apply" in final
    assert "drain [node k3s-server-3]: skipped" in said(drbot_lab, job_id, "Plan:")
    assert not job_files(lab, job_id).exists()  # it cannot be retried: its files are gone
    # the dead node's Longhorn Node was deleted (no replica left on it first, as v1.10 needs),
    # and the rebuilt node registered a new one that schedules
    assert step(drbot_lab, job_id, "clean Longhorn").result["nodes_removed"] == ["k3s-server-3"]
    new_lh = lh_node(lab, "k3s-server-3")
    assert new_lh and new_lh["metadata"]["uid"] != old_lh
    assert new_lh["spec"]["allowScheduling"] is True


def test_join_failure_then_retry_destroys_once_and_applies_once(
        drbot_lab: Harness, lab: Lab, recorded_terraform: RecordedTerraform) -> None:
    crash(lab, "k3s-server-2")
    job_id = approved(drbot_lab, requested(drbot_lab, "/dr rebuild-node k3s-server-2"))
    wait_step(drbot_lab, job_id, "delete Node", "done")
    # a stale node-password entry: K3s rejects the new machine under the old name
    stale = {"apiVersion": "v1", "kind": "Secret", "type": "k3s.cattle.io/node-password",
             "metadata": {"name": "k3s-server-2.node-password.k3s", "namespace": "kube-system"},
             "data": {"hash": "c3RhbGU="}}
    core_api(lab).create_namespaced_secret("kube-system", stale)

    job = drbot_lab.wait_status(job_id, "failed", "succeeded", timeout=RUN)
    assert job.status == "failed"
    failed = said(drbot_lab, job_id, "failed at step 'ansible join'")
    assert "Node password rejected" in failed and f"/dr retry {job_id}" in failed
    assert "kubectl -n kube-system delete secret k3s-server-2.node-password.k3s" in failed

    assert "ssh-ed25519" in known_hosts(lab, job_id)  # the new machine's key, kept for the retry

    core_api(lab).delete_namespaced_secret("k3s-server-2.node-password.k3s", "kube-system")
    assert "then resumes at ansible join" in retried(drbot_lab, job_id)
    job = drbot_lab.wait_status(job_id, "succeeded", "failed", timeout=RUN)
    assert job.status == "succeeded", job.error
    assert requests_to(lab, "DELETE", "/qemu/102") == 1
    assert requests_to(lab, "POST", "/nodes/pve1/qemu") == 1
    assert len(recorded_terraform.applies()) == 1
    assert not any(a.startswith("-replace") for argv in recorded_terraform.runs() for a in argv)
    assert is_ready(lab, "k3s-server-2")
    assert not job_files(lab, job_id).exists()


def test_retry_is_refused_while_the_playbook_of_a_dead_worker_still_runs(
        drbot_lab: Harness, lab: Lab) -> None:
    crash(lab, "k3s-server-3")
    # The operator's extravars (from drbot's inventory) point the playbook's own SSH wait at a
    # port nobody listens on: the playbook is certain to be waiting when its worker dies.
    inventory = yaml.safe_load(lab.inventory_path.read_text())
    inventory["iac"]["ansible"]["extravars"] = {"ssh_port": dead_port(), "ssh_timeout": 300}
    lab.inventory_path.write_text(yaml.safe_dump(inventory))
    job_id = approved(drbot_lab, requested(drbot_lab, "/dr rebuild-node k3s-server-3"))
    wait_step(drbot_lab, job_id, "ansible join", "running")
    # The playbook's process and ansible-playbook itself are both recorded.
    wait_until(lambda: len(signals.living_subprocesses(drbot_lab.redis, job_id)) == 2, 60, "the playbook")
    drbot_lab.kill_workers()
    drbot_lab.wait_status(job_id, "lost", timeout=60)
    alive = signals.living_subprocesses(drbot_lab.redis, job_id)
    assert len(alive) == 2, (alive, drbot_lab.frontend.replies(job_id))
    reply = drbot_lab.say(f"/dr retry {job_id}", who="alice")
    assert not reply.ok and "still running" in reply.text
    assert all(entry.split(" on ")[0] in reply.text for entry in alive)
    # The operator ends it (as /dr cancel would have, had the worker lived); then retry goes.
    for entry in alive:
        kill_tree(int(entry.split()[1]), grace=5.0)
    wait_until(lambda: not signals.living_subprocesses(drbot_lab.redis, job_id), 30, "the playbook to end")
    retried(drbot_lab, job_id)


def test_cancel_during_terraform_then_retry_trusts_only_the_new_host_key(
        drbot_lab: Harness, lab: Lab, recorded_terraform: RecordedTerraform) -> None:
    """A Ready server (the cluster-init one): drained, fenced, cancelled while Terraform holds
    its state lock, retried to success; it joins a surviving server."""
    assert lab.paths is not None
    lock = lab.paths.terraform / terraform_stub.LOCK_INFO
    old_key = lab.world.ssh_host_key("k3s-server-1")
    recorded_terraform.hold()
    job_id = requested(drbot_lab, "/dr rebuild-node k3s-server-1")
    assert "k3s-server-1 is still Ready" in said(drbot_lab, job_id, "Plan:")
    approved(drbot_lab, job_id)
    wait_until(recorded_terraform.held, RUN, "Terraform creating the VM")
    assert lock.exists()
    assert old_key in known_hosts(lab, job_id)  # the old machine's key, met before the fence
    reply = drbot_lab.say(f"/dr cancel {job_id}", who="bob")  # an approver of rebuild-node
    assert reply.ok, reply.text
    job = drbot_lab.wait_status(job_id, "cancelled", "failed", timeout=60)
    assert job.status == "cancelled"
    assert "during step 'terraform apply'" in said(drbot_lab, job_id, "cancelled by bob")
    assert not lock.exists()  # Terraform got SIGINT and let go of its lock

    recorded_terraform.release()
    retried(drbot_lab, job_id)
    # The job's known_hosts goes with the job once it succeeds: keep what it held until then.
    held: list[str] = []

    def ended() -> bool:
        text = known_hosts(lab, job_id)
        if text:
            held.append(text)
        return drbot_lab.job(job_id).status in ("succeeded", "failed")

    wait_until(ended, RUN, "the retried job to end")
    job = drbot_lab.job(job_id)
    assert job.status == "succeeded", job.error
    assert not job_files(lab, job_id).exists()
    assert len(recorded_terraform.applies()) == 2  # the cancelled one and the one that worked
    assert lab.world.vm("k3s-server-1").status == "running" and is_ready(lab, "k3s-server-1")
    new_key = lab.world.ssh_host_key("k3s-server-1")
    trusted = held[-1]
    assert new_key != old_key and new_key in trusted and old_key not in trusted
    assert step(drbot_lab, job_id, "drain").result["evicted"] >= 1
    assert step(drbot_lab, job_id, "ansible join").result["joined_via"] == "k3s-server-2"
    assert "SSH host key changed" in said(drbot_lab, job_id, "rebuilt and Ready")

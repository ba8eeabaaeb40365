"""The Proxmox adapter against fakepve's HTTPS API, spoken to by proxmoxer."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fakepve.certs import make_cert

from adapters.errors import (
    AdapterError,
    Cancelled,
    Conflict,
    NotFound,
    Refused,
    TimedOut,
    Unreachable,
)
from adapters.progress import Hooks, Progress
from adapters.proxmox.client import ProxmoxConfig
from adapters.proxmox.vms import VM, Proxmox, PveNode
from lab.fakes.pve import (
    TOKEN_NAME,
    TOKEN_SECRET,
    TOKEN_USER,
    PveLab,
    add_vm,
    add_volume,
    pve_client,
    pve_config,
)
from tests.support import PROMPT

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """Hooks that record progress and cancel once a task has been seen running, if asked to."""

    def __init__(self, cancel_when_running: bool = False) -> None:
        self.progress: list[Progress] = []
        self.cancel_when_running = cancel_when_running

    def cancelled(self) -> bool:
        return self.cancel_when_running and any(p.status == "running" for p in self.progress)

    @property
    def hooks(self) -> Hooks:
        return Hooks(report=self.progress.append, cancelled=self.cancelled)


def dead_endpoint() -> str:
    """An https URL on a loopback port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"https://127.0.0.1:{port}"


def running_task(server: Any, vmid: int) -> str:
    """The UPID of the VM's one unfinished task on the fake."""
    upids = [t["upid"] for t in server.tasklog
             if t["id"] == str(vmid) and t["status"] == "running"]
    assert len(upids) == 1, upids
    return upids[0]


def seed_finished_task(server: Any, node: str, exitstatus: str, log: list[str]) -> str:
    """A finished vzdump task in the fake's task list, with the given exit status and log."""
    upid = f"UPID:{node}:0000F000:00069000:6650A000:vzdump:101:root@pam:"
    record = {"upid": upid, "node": node, "pid": 0xF000, "pstart": 0x69000,
              "starttime": 0x6650A000, "type": "vzdump", "id": "101", "user": "root@pam",
              "status": "stopped", "exitstatus": exitstatus, "log": log}
    server.tasks[upid] = record
    server.tasklog.append(record)
    return upid


# ------------------------------------------------------------------ lookups


def test_find_vm_across_the_cluster(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101, node="pve1")
    vm = add_vm(server, 102, node="pve2", status="stopped", name="k3s-node2")
    vm.ha_state = "stopped"
    server.snapshot_lock(102, "backup")

    assert proxmox.find_vm(101) == VM(101, "vm101", "pve1", "running", "", "")
    assert proxmox.find_vm(102) == VM(102, "k3s-node2", "pve2", "stopped", "backup", "stopped")


def test_find_vm_missing_is_not_found(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101)
    with pytest.raises(NotFound, match="No VM 999 in the Proxmox cluster"):
        proxmox.find_vm(999)


def test_find_vm_falls_back_to_scanning_the_nodes(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 102, node="pve2")
    server.fail("GET", "/cluster/resources", status=500, message="resource listing broken")

    assert proxmox.find_vm(102) == VM(102, "vm102", "pve2", "running", "", "")
    paths = [path for method, path, _ in server.requests if method == "GET"]
    assert "/api2/json/nodes/pve2/qemu" in paths
    with pytest.raises(NotFound, match="No VM 999 on any Proxmox node"):
        proxmox.find_vm(999)


def test_find_vm_fallback_names_offline_nodes(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 102, node="pve2")
    server.fail("GET", "/cluster/resources", status=500, message="resource listing broken")
    server.set_node_offline("pve2")
    with pytest.raises(Unreachable, match="offline node\\(s\\) pve2 may hold it"):
        proxmox.find_vm(102)


def test_vm_status(pve: PveLab) -> None:
    server, proxmox = pve
    vm = add_vm(server, 103, node="pve2", name="k3s-node3")
    vm.ha_state = "started"
    assert proxmox.vm_status("pve2", 103) == VM(103, "k3s-node3", "pve2", "running", "", "started")
    with pytest.raises(NotFound, match="VM 103 on node pve1 does not exist"):
        proxmox.vm_status("pve1", 103)


def test_list_nodes_and_quorum(pve: PveLab) -> None:
    server, proxmox = pve
    assert proxmox.list_nodes() == [PveNode("pve1", True), PveNode("pve2", True)]
    assert proxmox.cluster_quorate() is True

    server.set_node_offline("pve2")
    server.lose_quorum()
    assert proxmox.list_nodes() == [PveNode("pve1", True), PveNode("pve2", False)]
    assert proxmox.cluster_quorate() is False


# --------------------------------------------------------------------- stop


def test_stop_vm_stops_and_reports(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101, node="pve2")
    recorder = Recorder()

    assert proxmox.stop_vm("pve2", 101, timeout=30, hooks=recorder.hooks) is True

    assert server.vm(101).status == "stopped"
    stops = [t for t in server.tasklog if t["type"] == "qmstop"]
    assert [(t["node"], t["id"], t["exitstatus"]) for t in stops] == [("pve2", "101", "OK")]
    assert Progress("Proxmox task qmstop: OK", target="VM 101", task="qmstop", host="pve2",
                    status="OK") in recorder.progress
    assert recorder.progress[-1].status == "stopped"


def test_stop_vm_is_idempotent(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101)
    assert proxmox.stop_vm("pve1", 101) is True
    recorder = Recorder()

    assert proxmox.stop_vm("pve1", 101, hooks=recorder.hooks) is False

    assert len([t for t in server.tasklog if t["type"] == "qmstop"]) == 1
    assert recorder.progress[0].message == "VM 101 is already stopped"


def test_stop_vm_through_ha(pve: PveLab) -> None:
    server, proxmox = pve
    vm = add_vm(server, 101)
    vm.ha_state = "started"
    assert proxmox.stop_vm("pve1", 101) is True
    assert server.vm(101).status == "stopped"
    assert [t["type"] for t in server.tasklog] == ["hastop"]


def test_stop_locked_vm_is_a_conflict(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101)
    server.snapshot_lock(101, "backup")
    with pytest.raises(Conflict) as caught:
        proxmox.stop_vm("pve1", 101)
    message = str(caught.value)
    assert "VM 101 on node pve1 is locked (backup)" in message
    assert "Wait for the backup to finish" in message
    assert "`qm unlock 101`" in message
    assert server.vm(101).status == "running"
    assert not server.tasklog


def test_stop_lock_reported_by_proxmox_is_a_conflict(pve: PveLab) -> None:
    """A lock taken between the status check and the stop request still reads as a lock."""
    server, proxmox = pve
    add_vm(server, 101)
    server.fail("POST", "/nodes/pve1/qemu/101/status/stop", status=500,
                message="VM is locked (snapshot)", times=1)
    with pytest.raises(Conflict, match=r"locked \(snapshot\).*`qm unlock 101`"):
        proxmox.stop_vm("pve1", 101)


def test_stop_without_quorum_is_refused(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101)
    server.lose_quorum()
    with pytest.raises(Refused, match="not quorate.*`pvecm status`"):
        proxmox.stop_vm("pve1", 101)
    assert server.vm(101).status == "running"


def test_stop_on_offline_node_is_unreachable(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 102, node="pve2")
    server.set_node_offline("pve2")
    with pytest.raises(Unreachable, match="Node pve2 is offline or unreachable.*595"):
        proxmox.stop_vm("pve2", 102)
    assert proxmox.find_vm(102).status == "unknown"


def test_stop_times_out_with_the_upid(pve: PveLab) -> None:
    server, proxmox = pve
    vm = add_vm(server, 101)
    vm.stop_secs = 100_000
    server.time_scale = 0.01  # the stop task takes 1000 s

    started = time.monotonic()
    with pytest.raises(TimedOut) as caught:
        proxmox.stop_vm("pve1", 101, timeout=0.5)
    assert time.monotonic() - started < PROMPT
    upid = running_task(server, 101)
    assert upid in str(caught.value)
    assert "Proxmox task qmstop for VM 101 on node pve1 did not finish within 0.5s" in str(
        caught.value)


def test_stop_task_failure_names_task_vm_status_and_log(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101)
    server.fail("POST", "/nodes/pve1/qemu/101/status/stop", error="quit_powerdown_failed")
    with pytest.raises(AdapterError) as caught:
        proxmox.stop_vm("pve1", 101)
    assert type(caught.value) is AdapterError
    message = str(caught.value)
    assert "Proxmox task qmstop for VM 101 on node pve1 failed" in message
    assert "exit status 'VM quit/powerdown failed'" in message
    assert "  TASK ERROR: VM quit/powerdown failed" in message
    assert server.tasklog[-1]["upid"] in message


def test_injected_http_error_then_recovery(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101)
    server.fail("GET", "/qemu/101/status/current", status=500, message="pvestatd hiccup", times=1)
    with pytest.raises(AdapterError, match="failed to read the status of VM 101: 500 pvestatd"):
        proxmox.vm_status("pve1", 101)
    assert proxmox.vm_status("pve1", 101).status == "running"


# ------------------------------------------------------------------ destroy


def test_destroy_vm_purges_with_its_disks(pve: PveLab) -> None:
    server, proxmox = pve
    vm = add_vm(server, 101, node="pve2", status="stopped")
    vm.ha_state = "stopped"  # PVE refuses an HA-managed VM without purge
    add_volume(server, 101, "vm-101-disk-7")  # not in the config: needs destroy-unreferenced-disks
    recorder = Recorder()

    assert proxmox.destroy_vm("pve2", 101, hooks=recorder.hooks) is True

    assert server.vm(101) is None
    assert not [v for v in server.storages["local-lvm"]["volumes"].values() if v["vmid"] == 101]
    task = server.tasklog[-1]
    assert (task["type"], task["exitstatus"]) == ("qmdestroy", "OK")
    assert any("purging VM 101" in line for line in task["log"])
    assert recorder.progress[-1] == Progress("VM 101 destroyed", target="VM 101", host="pve2",
                                             status="destroyed")


def test_destroy_is_idempotent(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101, status="stopped")
    assert proxmox.destroy_vm("pve1", 101) is True
    assert proxmox.destroy_vm("pve1", 101) is False
    assert proxmox.destroy_vm("pve2", 555) is False
    assert len([t for t in server.tasklog if t["type"] == "qmdestroy"]) == 1


def test_destroy_on_the_wrong_node_is_refused_not_a_no_op(pve: PveLab) -> None:
    """A VM migrated away from the node the inventory names is not "already destroyed"."""
    server, proxmox = pve
    add_vm(server, 101, node="pve2", status="stopped")
    with pytest.raises(Refused, match="VM 101 is not on node pve1 but on node pve2"):
        proxmox.destroy_vm("pve1", 101)
    assert server.vm(101) is not None


def test_destroy_trusts_no_lone_not_found(pve: PveLab) -> None:
    """A delete answered with "does not exist" counts as done only if the cluster agrees."""
    server, proxmox = pve
    add_vm(server, 101, status="stopped")
    server.fail("DELETE", "/nodes/pve1/qemu/101", error="configuration_file_does_not_exist")
    with pytest.raises(AdapterError, match="does not exist on node pve1 yet still lists it"):
        proxmox.destroy_vm("pve1", 101)
    assert server.vm(101) is not None


def test_destroy_running_vm_is_refused(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101)
    with pytest.raises(Refused, match="VM 101 on node pve1 is running.*Stop it first"):
        proxmox.destroy_vm("pve1", 101)
    assert server.vm(101) is not None
    assert not server.tasklog


def test_destroy_refused_by_proxmox_as_running(pve: PveLab) -> None:
    """A VM started between the status check and the delete request."""
    server, proxmox = pve
    add_vm(server, 101, status="stopped")
    server.fail("DELETE", "/nodes/pve1/qemu/101", error="running_destroy_failed")
    with pytest.raises(Refused, match="VM 101 on node pve1 is running"):
        proxmox.destroy_vm("pve1", 101)
    assert server.vm(101) is not None


def test_destroy_without_quorum_is_refused(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101, status="stopped")
    server.lose_quorum()
    with pytest.raises(Refused, match="not quorate, so it refuses to destroy VM 101"):
        proxmox.destroy_vm("pve1", 101)
    assert server.vm(101) is not None


def test_destroy_locked_vm_is_a_conflict(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101, status="stopped")
    server.snapshot_lock(101, "backup")
    with pytest.raises(Conflict, match=r"VM 101 on node pve1 is locked \(backup\)"):
        proxmox.destroy_vm("pve1", 101)
    assert server.vm(101) is not None


def test_destroy_task_failing_on_a_lock_is_a_conflict(pve: PveLab) -> None:
    server, proxmox = pve
    add_vm(server, 101, status="stopped")
    server.fail("DELETE", "/nodes/pve1/qemu/101", error="locked")
    with pytest.raises(Conflict) as caught:
        proxmox.destroy_vm("pve1", 101)
    message = str(caught.value)
    assert "Proxmox task qmdestroy for VM 101 on node pve1 failed" in message
    assert "`qm unlock 101`" in message
    assert server.tasklog[-1]["upid"] in message
    assert "TASK ERROR: VM is locked (backup)" in message


# -------------------------------------------------------------------- tasks


def test_wait_task_on_a_slow_shutdown_times_out(pve: PveLab, fakepve_cafile: str) -> None:
    server, proxmox = pve
    vm = add_vm(server, 101)
    vm.shutdown_secs = 1000
    server.time_scale = 0.01
    upid = pve_client(server, fakepve_cafile).nodes("pve1").qemu(101).status.shutdown.post(
        timeout=2000)

    with pytest.raises(TimedOut, match="qmshutdown for VM 101 .* did not finish") as caught:
        proxmox.wait_task("pve1", upid, timeout=0.3)
    assert f"`pvenode task status {upid}`" in str(caught.value)


def test_wait_task_on_a_failed_shutdown(pve: PveLab, fakepve_cafile: str) -> None:
    server, proxmox = pve
    vm = add_vm(server, 101)
    vm.shutdown_secs = 90  # longer than PVE's default 60 s shutdown timeout
    upid = pve_client(server, fakepve_cafile).nodes("pve1").qemu(101).status.shutdown.post()

    with pytest.raises(AdapterError) as caught:
        proxmox.wait_task("pve1", upid, timeout=10)
    message = str(caught.value)
    assert "Proxmox task qmshutdown for VM 101 on node pve1 failed with exit status " \
           "'VM quit/powerdown failed - got timeout'" in message
    assert upid in message


def test_wait_task_accepts_warnings(pve: PveLab) -> None:
    server, proxmox = pve
    upid = seed_finished_task(server, "pve1", "WARNINGS: 2", ["INFO: done"])
    assert proxmox.wait_task("pve1", upid, timeout=5)["exitstatus"] == "WARNINGS: 2"


def test_task_log_returns_the_tail_of_a_long_log(pve: PveLab) -> None:
    server, proxmox = pve
    upid = seed_finished_task(server, "pve1", "OK", [f"line {n}" for n in range(1203)])
    assert proxmox.task_log("pve1", upid, limit=3) == ["line 1200", "line 1201", "line 1202"]


def test_cancel_during_a_task_wait(pve: PveLab) -> None:
    server, proxmox = pve
    vm = add_vm(server, 101)
    vm.stop_secs = 100_000
    server.time_scale = 0.01  # the stop task takes 1000 s
    recorder = Recorder(cancel_when_running=True)

    started = time.monotonic()
    with pytest.raises(Cancelled) as caught:
        proxmox.stop_vm("pve1", 101, timeout=30, hooks=recorder.hooks)
    assert time.monotonic() - started < PROMPT
    upid = running_task(server, 101)
    assert upid in str(caught.value)
    assert "may still be running" in str(caught.value)


# -------------------------------------------------------- access and TLS


def test_wrong_token_names_the_token_not_the_secret(pve: PveLab, fakepve_cafile: str) -> None:
    server, _ = pve
    proxmox = Proxmox(pve_config(server, fakepve_cafile, token_value="wrong-secret-31c4"))
    with pytest.raises(AdapterError) as caught:
        proxmox.list_nodes()
    assert type(caught.value) is AdapterError
    assert f"rejected the API token {TOKEN_USER}!{TOKEN_NAME} (401" in str(caught.value)
    assert "wrong-secret-31c4" not in str(caught.value)


def test_ca_that_did_not_sign_the_certificate(pve: PveLab, tmp_path: Path) -> None:
    server, _ = pve
    other_ca = make_cert(str(tmp_path))[0]
    proxmox = Proxmox(pve_config(server, other_ca))
    with pytest.raises(Unreachable) as caught:
        proxmox.list_nodes()
    message = str(caught.value)
    assert f"Tried {server.url}: TLS failure ([SSL: CERTIFICATE_VERIFY_FAILED]" in message
    assert f"`ca_file` ({other_ca})" in message


def test_tls_is_verified_without_a_ca_file(pve: PveLab) -> None:
    server, _ = pve
    with pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED.*system CA store"):
        Proxmox(pve_config(server, None)).list_nodes()


def test_missing_or_garbage_ca_file(pve: PveLab, tmp_path: Path) -> None:
    server, _ = pve
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(AdapterError, match="Cannot use the CA bundle") as caught:
        Proxmox(pve_config(server, missing)).list_nodes()
    assert missing in str(caught.value)

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(Unreachable, match=r"TLS failure \(\[X509: NO_CERTIFICATE_OR_CRL_FOUND\]"):
        Proxmox(pve_config(server, str(garbage))).list_nodes()


def test_connection_refused_names_every_endpoint(pve: PveLab, fakepve_cafile: str) -> None:
    server, _ = pve
    first, second = dead_endpoint(), dead_endpoint()
    proxmox = Proxmox(pve_config(server, fakepve_cafile, endpoints=[first, second]))
    with pytest.raises(Unreachable) as caught:
        proxmox.stop_vm("pve1", 101)
    message = str(caught.value)
    assert f"{first}: cannot connect ([Errno 111] Connection refused)" in message
    assert f"{second}: cannot connect" in message
    assert "`endpoints`" in message and "`ca_file`" in message


def test_endpoints_are_tried_in_turn(pve: PveLab, fakepve_cafile: str) -> None:
    server, _ = pve
    add_vm(server, 101)
    proxmox = Proxmox(pve_config(server, fakepve_cafile, endpoints=[dead_endpoint(), server.url]))
    assert proxmox.stop_vm("pve1", 101) is True
    assert server.vm(101).status == "stopped"


@pytest.mark.parametrize("changes, problem", [
    ({"endpoints": []}, "`endpoints` is empty"),
    ({"endpoints": ["http://pve1:8006"]}, "must look like https://host:8006"),
    ({"endpoints": ["https://pve1:8006/api2/json"]}, "must look like"),
    ({"user": "drbot"}, "needs a realm"),
    ({"token_value": ""}, "`token_name` and `token_value` are required"),
    ({"timeout": 0}, "`timeout` must be positive"),
])
def test_config_is_validated(changes: dict[str, Any], problem: str) -> None:
    settings: dict[str, Any] = {"endpoints": ["https://pve1:8006"], "user": TOKEN_USER,
                                "token_name": TOKEN_NAME, "token_value": TOKEN_SECRET}
    settings.update(changes)
    with pytest.raises(AdapterError, match=problem):
        ProxmoxConfig(**settings)


def test_the_token_secret_never_leaks(pve: PveLab, fakepve_cafile: str, tmp_path: Path) -> None:
    server, proxmox = pve
    add_vm(server, 101)
    add_vm(server, 102, node="pve2")
    add_vm(server, 103, status="stopped")
    texts = [repr(proxmox.config), str(proxmox.config), repr(proxmox)]
    errors: list[AdapterError] = []

    def collect(action: Any) -> None:
        with pytest.raises(AdapterError) as caught:
            action()
        errors.append(caught.value)

    # Wrong secret on the server side, so the configured one is sent and rejected.
    server.apitokens[f"{TOKEN_USER}!{TOKEN_NAME}"] = "another-secret"
    collect(lambda: proxmox.find_vm(101))
    server.apitokens[f"{TOKEN_USER}!{TOKEN_NAME}"] = TOKEN_SECRET
    collect(lambda: Proxmox(pve_config(server, make_cert(str(tmp_path))[0])).list_nodes())
    collect(lambda: Proxmox(pve_config(server, fakepve_cafile,
                                       endpoints=[dead_endpoint()])).list_nodes())
    collect(lambda: proxmox.destroy_vm("pve1", 101))
    server.fail("DELETE", "/nodes/pve1/qemu/103", error="locked")
    collect(lambda: proxmox.destroy_vm("pve1", 103))
    server.set_node_offline("pve2")
    collect(lambda: proxmox.stop_vm("pve2", 102))

    assert len(errors) == 6
    for error in errors:
        texts += [str(error), repr(error), *map(str, error.args)]
        # No vendor exception (whose request holds the Authorization header) rides along.
        assert error.__cause__ is None and error.__context__ is None
    assert not [text for text in texts if TOKEN_SECRET in text]


def test_importing_the_adapter_loads_no_client() -> None:
    code = ("import sys, adapters.proxmox.vms; "
            "print(sorted(m for m in ('proxmoxer', 'requests') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("lock", ["backup", "clone", "create", "migrate", "rollback", "snapshot",
                                  "snapshot-delete", "suspending", "suspended"])
def test_every_qemu_server_lock_is_a_conflict_with_the_unlock_advice(pve: PveLab,
                                                                     lock: str) -> None:
    """Each lock name qemu-server knows (PVE/QemuServer.pm), dashes included, as PVE says it."""
    server, proxmox = pve
    add_vm(server, 101)
    server.fail("POST", "/nodes/pve1/qemu/101/status/stop", status=500,
                message=f"VM is locked ({lock})", times=1)
    with pytest.raises(Conflict) as caught:
        proxmox.stop_vm("pve1", 101)
    assert f"VM 101 on node pve1 is locked ({lock})" in str(caught.value)
    assert "`qm unlock 101`" in str(caught.value)

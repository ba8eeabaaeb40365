"""`drbot doctor` against the simulated homelab: all green as the lab starts; each check made to
fail in turn is red with its fix while the others stay green; and no run writes anything (no
object, no Kubernetes or Proxmox write, no file in the IaC checkout, no known_hosts change)."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bot.config.inventory import load_inventory
from bot.config.settings import Settings
from bot.doctor import ssh
from bot.doctor.iac import credentials_line
from bot.doctor.result import Line, Status, System
from bot.doctor.run import check_all
from bot.worker.services import Services
from lab import Lab, files, terraform_stub, world
from lab.fakes.s3 import LIST_ACTIONS, READ_ACTIONS, S3Server, bucket_arn
from lab.kube import SSAR_PATH

RED = Status.FAIL
TF_TOKEN = files.TERRAFORM_TOKEN_ID
TF_VM = ("VM.Allocate", "VM.Audit", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit",
         "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network",
         "VM.Config.Options", "VM.PowerMgmt")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("doctor") / "lab", time_scale=0.1) as running:
        saved = dict(os.environ)
        os.environ.update(running.env)
        try:
            yield running
        finally:
            os.environ.clear()
            os.environ.update(saved)


@dataclass
class Snapshot:
    """Everything a doctor run could have written to."""

    objects: dict[str, tuple[str, str]]
    iac_status: str
    state: bytes
    known_hosts: bytes
    kube_requests: int
    pve_requests: int


def s3_objects(lab: Lab) -> dict[str, tuple[str, str]]:
    secret = dict(line.split("=", 1) for line in (lab.workdir / "secrets" / "s3-credentials")
                  .read_text().split())["secret_key"]
    client = boto3.client("s3", endpoint_url=lab.s3_url, region_name=world.REGION,
                          aws_access_key_id=files.S3_ACCESS_KEY, aws_secret_access_key=secret)
    out = {}
    for bucket in world.BUCKETS.values():
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                out[f"{bucket}/{item['Key']}"] = (item["ETag"], str(item["LastModified"]))
    return out


def snapshot(lab: Lab) -> Snapshot:
    assert lab.paths is not None
    status = subprocess.run(["git", "-C", str(lab.paths.iac), "status", "--porcelain",
                             "--ignored", "--untracked-files=all"], capture_output=True,
                            text=True, check=True).stdout
    return Snapshot(s3_objects(lab), status,
                    (lab.paths.terraform / terraform_stub.STATE).read_bytes(),
                    (lab.workdir / "known_hosts").read_bytes(), len(lab.world.kube_requests()),
                    len(lab.world.pve_requests()))


def assert_nothing_written(lab: Lab, before: Snapshot) -> None:
    after = snapshot(lab)
    assert after.objects == before.objects, "an object was written or deleted"
    assert after.iac_status == before.iac_status, "a file appeared or changed in the checkout"
    assert after.state == before.state
    assert after.known_hosts == before.known_hosts
    kube = lab.world.kube_requests()[before.kube_requests:]
    assert kube, "the doctor asked Kubernetes nothing"
    writes = [(r.method, r.path) for r in kube if r.method != "GET"]
    assert {w for w in writes if w != ("POST", SSAR_PATH)} == set(), writes
    pve = lab.world.pve_requests()[before.pve_requests:]
    assert pve and {method for method, _, _ in pve} == {"GET"}


def run(lab: Lab, inventory: Path | None = None) -> list[Line]:
    settings = Settings(kubeconfig=lab.kubeconfig)
    return check_all(Services(settings, load_inventory(inventory or lab.inventory_path)))


def red(lines: list[Line]) -> list[Line]:
    return [line for line in lines if line.status is RED]


def edited_inventory(lab: Lab, tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    data = yaml.safe_load(lab.inventory_path.read_text())
    edit(data)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_all_green_on_the_lab_and_nothing_written(lab: Lab) -> None:
    before = snapshot(lab)
    lines = run(lab)
    assert red(lines) == [], "\n".join(line.render() for line in red(lines))
    systems = {line.system for line in lines if line.status is Status.OK}
    assert systems == set(System)
    subjects = {line.subject for line in lines}
    for node in world.NODES:
        assert node.name in subjects  # ssh, one line per node
        assert f"vm {node.name}" in subjects and f"terraform {node.name}" in subjects
    assert "etcd_store write" in subjects and "terraform state lock" in subjects
    assert_nothing_written(lab, before)


def only_red(lines: list[Line], system: System, *subjects: str) -> list[Line]:
    """The red lines, after checking they are exactly these (and every other line is not)."""
    bad = red(lines)
    assert sorted((line.system, line.subject) for line in bad) == \
        sorted((system, s) for s in subjects), "\n".join(line.render() for line in bad)
    assert all(line.fix for line in bad)
    return bad


def test_wrong_proxmox_token(lab: Lab, tmp_path: Path) -> None:
    token = tmp_path / "pve-token"
    token.write_text("not-the-secret\n")
    inventory = edited_inventory(lab, tmp_path, lambda d: d["proxmox"].update(
        token_file=str(token)))
    before = snapshot(lab)
    (line,) = only_red(run(lab, inventory), System.PROXMOX, f"token {files.PVE_TOKEN_ID}")
    assert "401" in line.detail or "authentication" in line.detail.lower()
    assert "pveum user token list drbot@pve" in line.fix
    assert_nothing_written(lab, before)


def grant_terraform(lab: Lab, storage: tuple[str, ...] = ("Datastore.AllocateSpace",
                                                          "Datastore.Audit")) -> None:
    """Terraform's token gets what main.tf needs (fakepve: once anything is granted, a token
    holds only its grants)."""
    lab.world.grant_pve("/vms", *TF_VM, token=TF_TOKEN)
    lab.world.grant_pve("/nodes", "Sys.Audit", token=TF_TOKEN)
    lab.world.grant_pve("/storage/local-lvm", *storage, token=TF_TOKEN)
    lab.world.grant_pve("/sdn/zones/localnetwork/vmbr0", "SDN.Use", token=TF_TOKEN)


def test_missing_proxmox_privilege(lab: Lab) -> None:
    lab.world.grant_pve("/", "Sys.Audit")
    lab.world.grant_pve("/vms", "VM.Audit", "VM.PowerMgmt")  # no VM.Allocate: cannot destroy
    grant_terraform(lab)
    try:
        before = snapshot(lab)
        (line,) = only_red(run(lab), System.PROXMOX, "privileges")
        assert_nothing_written(lab, before)
    finally:
        lab.world.reset_pve_grants()
    assert line.detail.startswith(f"{files.PVE_TOKEN_ID} lacks VM.Allocate on /vms/101,")
    assert "/vms/105" in line.detail and "Sys.Audit" not in line.detail
    assert "pveum acl modify" in line.fix


def test_missing_kubernetes_permission(lab: Lab) -> None:
    lab.world.deny_kube("create", "", "pods/eviction")
    try:
        before = snapshot(lab)
        (line,) = only_red(run(lab), System.KUBERNETES, "permissions")
        assert_nothing_written(lab, before)
    finally:
        lab.world.allow_kube_all()
    assert line.detail == "denied to drbot's account: create pods/eviction"
    assert "clusterrole.yaml" in line.fix


def test_unreadable_bucket(lab: Lab, tmp_path: Path) -> None:
    inventory = edited_inventory(lab, tmp_path, lambda d: d["backups"]["cnpg_store"].update(
        url="s3://drbot-lab-nowhere/"))
    before = snapshot(lab)
    (line,) = only_red(run(lab, inventory), System.STORE, "cnpg_store")
    assert "'drbot-lab-nowhere' does not exist" in line.detail
    assert "credentials file" in line.fix
    assert_nothing_written(lab, before)


def store_with_key(lab: Lab, tmp_path: Path, s3: S3Server, actions: tuple[str, ...],
                   resource: str, bucket: str) -> Path:
    """The inventory with cnpg_store on a moto of its own that checks IAM policies, reached
    with the key of a user allowed ``actions`` on ``resource`` only."""
    access, secret = s3.iam_user(f"doctor-{len(actions)}-{bucket}", actions, (resource,))
    credentials = tmp_path / "cnpg-credentials"
    credentials.write_text(f"access_key={access}\nsecret_key={secret}\n")
    credentials.chmod(0o600)
    s3.enforce_iam()
    return edited_inventory(lab, tmp_path, lambda d: d["backups"]["cnpg_store"].update(
        url=f"s3://{bucket}/cnpg/", endpoint_url=s3.endpoint_url, region="us-east-1",
        credentials_file=str(credentials)))


def test_bucket_listed_but_not_readable(lab: Lab, tmp_path: Path, own_s3: S3Server) -> None:
    bucket = own_s3.new_bucket()
    own_s3.store(bucket).upload("cnpg/base/backup.info", b"1")
    inventory = store_with_key(lab, tmp_path, own_s3, LIST_ACTIONS, bucket_arn(bucket), bucket)
    before = snapshot(lab)
    (line,) = only_red(run(lab, inventory), System.STORE, "cnpg_store")
    assert line.detail.startswith(f"access denied to bucket {bucket!r} for GetObject on ")
    assert "base/backup.info" in line.detail
    assert line.fix.startswith(f"grant the store's key s3:GetObject on arn:aws:s3:::{bucket}"
                               "/cnpg/* ")
    assert_nothing_written(lab, before)


def test_bucket_not_listable(lab: Lab, tmp_path: Path, own_s3: S3Server) -> None:
    bucket = own_s3.new_bucket()
    own_s3.store(bucket).upload("cnpg/base/backup.info", b"1")
    inventory = store_with_key(lab, tmp_path, own_s3, READ_ACTIONS,
                               f"{bucket_arn(bucket)}/*", bucket)
    before = snapshot(lab)
    (line,) = only_red(run(lab, inventory), System.STORE, "cnpg_store")
    assert line.detail.startswith(f"access denied to bucket {bucket!r} for ListObjectsV2 on ")
    assert line.fix.startswith(f"grant the store's key s3:ListBucket on arn:aws:s3:::{bucket} ")
    assert_nothing_written(lab, before)


def test_wrong_ssh_key(lab: Lab, tmp_path: Path) -> None:
    key = tmp_path / "other-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    inventory = edited_inventory(lab, tmp_path, lambda d: d["iac"].update(ssh_key_file=str(key)))
    before = snapshot(lab)
    bad = only_red(run(lab, inventory), System.SSH, *(n.name for n in world.NODES))
    for line in bad:
        assert f"refuses the key {key}" in line.detail
        assert "authorized_keys" in line.fix
    assert_nothing_written(lab, before)


def test_changed_host_key(lab: Lab) -> None:
    node = "k3s-server-2"
    keys = lab.workdir / "vms" / node / "ssh"
    saved = {p.name: p.read_bytes() for p in keys.glob("ssh_host_ed25519_key*")}
    lab.world.change_host_key(node)
    try:
        before = snapshot(lab)
        (line,) = only_red(run(lab), System.SSH, node)
        assert_nothing_written(lab, before)
    finally:
        for name, data in saved.items():
            (keys / name).write_bytes(data)
        lab.world.reload_sshd(node)
    port = lab.world.ssh_port(node)
    assert "different host key" in line.detail
    assert f"ssh-keygen -R '[127.0.0.1]:{port}'" in line.fix


def test_the_nodes_are_tried_at_once(lab: Lab, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every node's login is in flight together: a listener that answers no SSH banner lets
    the connections go only once all of them are open, which logins one after the other never
    reach (each would wait out its timeout alone first)."""
    nodes = [node.name for node in world.NODES]
    listener = socket.create_server(("127.0.0.1", 0))
    live: set[socket.socket] = set()
    most = 0

    def serve() -> None:
        nonlocal most
        with listener, selectors.DefaultSelector() as waiting:
            waiting.register(listener, selectors.EVENT_READ)
            while len(live) < len(nodes):
                for key, _ in waiting.select():
                    if key.fileobj is listener:
                        conn, _ = listener.accept()
                        live.add(conn)
                        waiting.register(conn, selectors.EVENT_READ)
                    elif not key.fileobj.recv(4096):  # type: ignore[union-attr]
                        waiting.unregister(key.fileobj)  # that client gave up: not open now
                        live.discard(key.fileobj)  # type: ignore[arg-type]
                most = max(most, len(live))
        for conn in live:
            conn.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    port = listener.getsockname()[1]
    inventory = edited_inventory(lab, tmp_path, lambda d: [d["nodes"][name].update(
        ssh_address="127.0.0.1", ssh_port=port) for name in nodes])
    monkeypatch.setattr(ssh, "CONNECT_TIMEOUT", 120)  # only so that a serial run fails, late
    monkeypatch.setattr(ssh, "TIMEOUT", 120)
    lines = ssh.check(load_inventory(inventory))
    server.join(timeout=1)
    assert most == len(nodes)
    assert [line.subject for line in lines] == sorted(nodes)
    assert all(line.red and line.detail.startswith("ssh failed") for line in lines), lines


def test_dirty_iac_checkout(lab: Lab) -> None:
    assert lab.paths is not None
    stray = lab.paths.terraform / "scratch.tf"
    stray.write_text("# someone's experiment\n")
    try:
        before = snapshot(lab)
        bad = only_red(run(lab), System.IAC, "terraform checkout", "ansible checkout")
        assert_nothing_written(lab, before)
    finally:
        stray.unlink()
    for line in bad:  # one repository holds both projects
        assert "has local changes (terraform/scratch.tf)" in line.detail
        assert "commit and push them" in line.detail


def test_locked_state(lab: Lab) -> None:
    assert lab.paths is not None
    info = terraform_stub.write_lock(lab.paths.terraform, "OperationTypeApply",
                                     who="alice@laptop")
    assert info is not None
    try:
        before = snapshot(lab)
        (line,) = only_red(run(lab), System.IAC, "terraform state lock")
        assert_nothing_written(lab, before)
    finally:
        (lab.paths.terraform / terraform_stub.LOCK_INFO).unlink()
    assert "locked by alice@laptop" in line.detail and info["ID"] in line.detail
    assert f"`terraform force-unlock {info['ID']}` in " in line.fix  # no /dr command for it yet


def test_playbook_syntax_error(lab: Lab, tmp_path: Path) -> None:
    """A broken playbook committed at the configured revision (so the checkout is clean)."""
    assert lab.paths is not None
    repo = str(lab.paths.iac)
    old = lab.paths.revision
    playbook = lab.paths.ansible / "etcd-fetch.yml"
    playbook.write_text(playbook.read_text() + "- hosts: all\n  tasks:\n    - nosuchmodule: {}\n")
    git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "commit", "-qam", "break the fetch playbook"], check=True)
    new = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                         text=True, check=True).stdout.strip()
    inventory = edited_inventory(lab, tmp_path, lambda d: (
        d["iac"]["terraform"].update(revision=new), d["iac"]["ansible"].update(revision=new)))
    try:
        before = snapshot(lab)
        (line,) = only_red(run(lab, inventory), System.IAC, "playbook etcd-fetch.yml")
        assert_nothing_written(lab, before)
    finally:
        subprocess.run([*git, "reset", "-q", "--hard", old], check=True)
    assert "nosuchmodule" in line.detail
    assert "fix etcd-fetch.yml" in line.fix


def test_vmid_naming_another_vm(lab: Lab, tmp_path: Path) -> None:
    inventory = edited_inventory(lab, tmp_path, lambda d: d["nodes"]["k3s-server-2"].update(
        vmid=103))
    before = snapshot(lab)
    (line,) = only_red(run(lab, inventory), System.DRIFT, "vm k3s-server-2")
    assert line.detail == "vmid 103 is the VM named 'k3s-server-3' on pve2"
    assert "fix nodes.k3s-server-2.vmid" in line.fix
    assert_nothing_written(lab, before)


def test_node_missing_from_terraform_state(lab: Lab) -> None:
    assert lab.paths is not None
    path = lab.paths.terraform / terraform_stub.STATE
    saved = path.read_bytes()
    state = json.loads(saved)
    for resource in state["resources"]:
        resource["instances"] = [i for i in resource["instances"]
                                 if i["index_key"] != "k3s-agent-1"]
    path.write_text(json.dumps(state))
    try:
        before = snapshot(lab)
        (line,) = only_red(run(lab), System.DRIFT, "terraform k3s-agent-1")
        assert_nothing_written(lab, before)
    finally:
        path.write_bytes(saved)
    assert line.detail == ('proxmox_virtual_environment_vm.k3s["k3s-agent-1"] is not in the '
                           "Terraform state")
    assert "terraform state list" in line.fix


def test_the_cli_prints_the_report_and_fails_when_red(lab: Lab, tmp_path: Path) -> None:
    import sys

    env = {**os.environ, **lab.env, "DRBOT_LOG_JSON": "false"}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "doctor"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("green, 0 red")
    inventory = edited_inventory(lab, tmp_path, lambda d: d["nodes"]["k3s-server-2"].update(
        vmid=103))
    done = subprocess.run([sys.executable, "-m", "bot.cli", "doctor"],
                          env={**env, "DRBOT_INVENTORY": str(inventory)},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1
    assert "✗ drift vm k3s-server-2: vmid 103 is the VM named 'k3s-server-3'" in done.stdout
    assert "    fix: fix nodes.k3s-server-2.vmid" in done.stdout
    assert done.stdout.rstrip().endswith("1 red — fix the red lines above")
    assert shutil.which("ssh")  # the checks above used the real client


def test_terraform_credentials_are_named(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """drbot does not hand Terraform its token: the doctor says which login Terraform has."""
    services = Services(Settings(kubeconfig=lab.kubeconfig), load_inventory(lab.inventory_path))
    line = credentials_line(services)
    assert line.detail.startswith(
        f"Terraform signs in to Proxmox with API token {files.TERRAFORM_TOKEN_ID} from "
        "`api_token` in the provider block of main.tf, from TF_VAR_proxmox_api_token, not "
        "drbot's token; ")
    monkeypatch.delenv("TF_VAR_proxmox_api_token")
    line = credentials_line(services)
    assert line.status is Status.OK
    assert line.detail.startswith(
        "Terraform signs in to Proxmox with the API token from `api_token` in the provider block "
        "of main.tf (var.proxmox_api_token, a value drbot does not see), not drbot's token; ")
    assert "Datastore" in line.detail

    assert lab.paths is not None
    secret = lab.paths.pve_token_file.read_text().strip()
    monkeypatch.setenv("TF_VAR_proxmox_api_token", f"{files.PVE_TOKEN_ID}={secret}")
    line = credentials_line(services)
    assert line.detail.startswith(
        f"Terraform signs in to Proxmox with API token {files.PVE_TOKEN_ID} from `api_token` in "
        "the provider block of main.tf, from TF_VAR_proxmox_api_token (drbot's own token); ")
    assert secret not in line.detail


def without_provider_login(lab: Lab, tmp_path: Path) -> Path:
    """An inventory whose Terraform project is the lab's without its provider block."""
    project = tmp_path / "terraform"
    project.mkdir()
    assert lab.paths is not None
    text = (lab.paths.terraform / "main.tf").read_text()
    start = text.index('provider "proxmox" {')
    (project / "main.tf").write_text(text[:start] + text[text.index("}\n", start) + 2:])
    return edited_inventory(lab, tmp_path, lambda d: d["iac"]["terraform"].update(
        dir=str(project), revision=None))


def test_terraform_without_credentials_is_red(lab: Lab, tmp_path: Path) -> None:
    inventory = without_provider_login(lab, tmp_path)
    line = credentials_line(Services(Settings(kubeconfig=lab.kubeconfig),
                                     load_inventory(inventory)))
    assert line.red
    assert line.detail == (
        "Terraform's Proxmox provider has no login: no api_token or username in a provider "
        f"\"proxmox\" block of {tmp_path / 'terraform'}, no PROXMOX_VE_API_TOKEN or PROXMOX_VE_USERNAME in "
        "the worker's environment")
    assert line.fix.startswith("give Terraform its own Proxmox token: PROXMOX_VE_API_TOKEN=")


# -- Terraform's own Proxmox login ----------------------------------------------------------------


def terraform_lines(lines: list[Line]) -> dict[str, Line]:
    return {line.subject: line for line in lines
            if line.system is System.PROXMOX and line.subject.startswith("terraform")}


def test_terraform_token_checked_on_every_path_it_needs(lab: Lab) -> None:
    lines = terraform_lines(run(lab))
    assert set(lines) == {f"terraform token {TF_TOKEN}", "terraform /nodes/pve1",
                          "terraform /nodes/pve2", "terraform /storage/local-lvm",
                          "terraform /sdn/zones/localnetwork/vmbr0",
                          *(f"terraform /vms/{node.vmid}" for node in world.NODES)}
    assert all(line.status is Status.OK for line in lines.values())
    assert "TLS verified" in lines[f"terraform token {TF_TOKEN}"].detail


def test_terraform_token_missing_a_datastore_privilege(lab: Lab) -> None:
    """Terraform's token may do everything but allocate disk space on the datastore main.tf
    names: that path alone is red, with the grant that fixes it; drbot's own token is green."""
    lab.world.grant_pve("/", "Sys.Audit")
    lab.world.grant_pve("/vms", "VM.Audit", "VM.PowerMgmt", "VM.Allocate")
    grant_terraform(lab, storage=("Datastore.Audit",))  # no Datastore.AllocateSpace
    try:
        before = snapshot(lab)
        lines = run(lab)
        (line,) = only_red(lines, System.PROXMOX, "terraform /storage/local-lvm")
        assert_nothing_written(lab, before)
    finally:
        lab.world.reset_pve_grants()
    assert line.detail == (f"{TF_TOKEN} lacks Datastore.AllocateSpace on /storage/local-lvm "
                           "(for the disks on datastore local-lvm)")
    assert line.fix.startswith(f"`pveum acl modify /storage/local-lvm --tokens '{TF_TOKEN}' "
                               "--roles PVEDatastoreUser`")
    tf = terraform_lines(lines)
    assert len(tf) == 10 and sum(1 for t in tf.values() if t.status is Status.OK) == 9


def test_wrong_terraform_token_secret(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "0b5e2c1d-not-the-secret"
    monkeypatch.setenv("TF_VAR_proxmox_api_token", f"{TF_TOKEN}={wrong}")
    before = snapshot(lab)
    lines = run(lab)
    (line,) = only_red(lines, System.PROXMOX, f"terraform token {TF_TOKEN}")
    assert "401" in line.detail or "authentication" in line.detail.lower()
    assert "pveum user token list terraform@pve" in line.fix
    assert "TF_VAR_proxmox_api_token" in line.fix
    assert not any(wrong in ln.render() for ln in lines)
    assert list(terraform_lines(lines)) == [f"terraform token {TF_TOKEN}"]  # nothing else asked
    assert_nothing_written(lab, before)


def test_terraform_token_drbot_cannot_see(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """main.tf reads var.proxmox_api_token, and nothing gives it a value: a Terraform run
    started by drbot would have no token either."""
    monkeypatch.delenv("TF_VAR_proxmox_api_token")
    (line,) = only_red(run(lab), System.PROXMOX, "terraform token")
    assert line.detail == (
        "Terraform's Proxmox token comes from `api_token` in the provider block of main.tf "
        "(var.proxmox_api_token, a value drbot does not see), so neither drbot nor a Terraform "
        "run started by drbot has it")
    assert line.fix.startswith("set TF_VAR_proxmox_api_token=user@realm!name=secret in the "
                               "worker's environment")


def test_malformed_terraform_token(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_VAR_proxmox_api_token", "a-bare-secret-0b5e")
    lines = run(lab)
    (line,) = only_red(lines, System.PROXMOX, "terraform token")
    assert line.detail == ("Terraform's Proxmox token from `api_token` in the provider block "
                           "of main.tf, from TF_VAR_proxmox_api_token is malformed (not "
                           "user@realm!name=secret; the value is not shown)")
    assert not any("a-bare-secret" in ln.render() for ln in lines)


def test_no_terraform_login_is_red_with_what_to_set(lab: Lab, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider login anywhere: the IaC line says what to set; no privilege is asked."""
    inventory = without_provider_login(lab, tmp_path)
    lines = run(lab, inventory)
    red_lines = {(ln.system, ln.subject): ln for ln in red(lines)}
    line = red_lines[(System.IAC, "terraform credentials")]
    assert line.fix.startswith("give Terraform its own Proxmox token: PROXMOX_VE_API_TOKEN=")
    assert terraform_lines(lines) == {}

"""The lab through the real clients: kubernetes against kmock, proxmoxer against fakepve, boto3
against moto, ansible-runner and the Terraform stub as processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config.inventory import load_inventory
from lab import Lab, files, terraform_stub, world
from lab.servers import dead_port
from lab.store import longhorn_volume_dir
from tests.support import children, sync_longhorn_target

SCALE = 0.05  # every controller delay is 5% of its real-world-like value
WAIT = 15.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("lab"), time_scale=SCALE) as started:
        yield started


@pytest.fixture(scope="module")
def kube(lab: Lab) -> Any:
    from kubernetes import client, config

    api = config.new_client_from_config(str(lab.kubeconfig))
    return client, api


@pytest.fixture(scope="module")
def pve(lab: Lab) -> Any:
    from proxmoxer import ProxmoxAPI

    assert lab.paths is not None
    host = lab.pve_url.removeprefix("https://")
    name, port = host.rsplit(":", 1)
    return ProxmoxAPI(
        name,
        port=int(port),
        user="drbot@pve",
        token_name="drbot",
        token_value=lab.paths.pve_token_file.read_text().strip(),
        verify_ssl=lab.pve_ca_file,
    )


@pytest.fixture(scope="module")
def s3(lab: Lab) -> Any:
    import boto3

    assert lab.paths is not None
    creds = dict(line.split("=", 1) for line in lab.paths.s3_credentials.read_text().split())
    return boto3.client(
        "s3",
        endpoint_url=lab.s3_url,
        region_name="us-east-1",
        aws_access_key_id=creds["access_key"],
        aws_secret_access_key=creds["secret_key"],
    )


def custom(kube: Any) -> Any:
    client, api = kube
    return client.CustomObjectsApi(api)


def core(kube: Any) -> Any:
    client, api = kube
    return client.CoreV1Api(api)


def ready(node: Any) -> str:
    return next(c.status for c in node.status.conditions if c.type == "Ready")


def port_of(url_or_port: str | int) -> int:
    return int(str(url_or_port).rsplit(":", 1)[-1].rstrip("/"))


def listening(url_or_port: str | int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port_of(url_or_port))) == 0


def listening_here(url_or_port: str | int) -> bool:
    """Whether this process holds a listening socket on the port.

    Asking "does anything answer on the port" would be wrong after a stop: other test workers run in
    parallel and may already have been given the freed port."""
    port = port_of(url_or_port)
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    ours = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            ours.add(os.readlink(fd))
        except OSError:
            continue
    return bool(inodes & ours)


# ------------------------------------------------------------------------ lifecycle


def test_starts_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """How fast it starts: bench/lab_start.py."""
    before = set(children(os.getpid()))
    lab = Lab(tmp_path / "lab", time_scale=SCALE).start()
    try:
        ports = [
            lab.kube_url,
            lab.pve_url,
            lab.s3_url,
            *(lab.world.ssh_port(s.name) for s in world.NODES),
        ]
        assert all(listening(p) for p in ports)
        assert all(listening_here(p) for p in ports[:3])  # the API servers run in this process
        assert len(set(children(os.getpid())) - before) == len(world.NODES)  # one sshd per VM
        inventory = load_inventory(lab.inventory_path)
        assert set(inventory.nodes) == {s.name for s in world.NODES}
        assert inventory.drbot_nodes == ["k3s-agent-2"]
        assert inventory.nodes["k3s-server-1"].cluster_init
        assert lab.env["PATH"].split(os.pathsep)[0] == str(lab.paths.bin)
    finally:
        lab.stop()
    assert set(children(os.getpid())) - before == set()
    assert not any(listening_here(p) for p in ports)


def test_files_are_valid_and_clean(lab: Lab) -> None:
    assert lab.paths is not None
    policy = yaml.safe_load(lab.policy_path.read_text())
    assert policy["lab"] is True
    assert policy["commands"]["rebuild-cluster"]["approvals"] == 2
    import getpass

    assert f"console:{getpass.getuser()}" in policy["people"]["alice"]["accounts"]
    status = subprocess.run(
        ["git", "-C", str(lab.paths.iac), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""
    head = subprocess.run(
        ["git", "-C", str(lab.paths.iac), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    iac = load_inventory(lab.inventory_path).iac
    assert iac.terraform.revision == head
    assert iac.flux_bootstrap[0] == str(lab.paths.flux_bootstrap)
    assert os.access(lab.paths.flux_bootstrap, os.X_OK)
    assert iac.flux_secret_file == str(lab.paths.flux_secret_file)
    credential = yaml.safe_load(lab.paths.flux_secret_file.read_text())
    assert (credential["kind"], credential["metadata"]) == (
        "Secret",
        {"name": "flux-system", "namespace": "flux-system"},
    )
    seeded = lab.world.kube_object("v1", "secrets", "flux-system", "flux-system")
    assert seeded is not None and seeded["data"] == credential["data"]
    k3s_yamls = [
        lab.workdir / "vms" / s.name / world.K3S_KUBECONFIG for s in world.NODES if s.server
    ]
    admin = yaml.safe_load(k3s_yamls[0].read_text())
    assert admin["clusters"][0]["cluster"]["server"] == world.K3S_LOCAL_API
    lab_admin = yaml.safe_load(lab.kubeconfig.read_text())["users"][0]["user"]
    assert admin["users"][0]["user"] == lab_admin  # the lab's kubeconfig is that one, fetched
    for private in (lab.paths.pve_token_file, lab.paths.flux_secret_file, *k3s_yamls):
        assert oct(private.stat().st_mode)[-3:] == "600", private
    assert all("SECRET" not in k or "FILE" in k for k in lab.env)


# ---------------------------------------------------------------------------- seed


def test_seed_kubernetes(kube: Any) -> None:
    nodes = {n.metadata.name: n for n in core(kube).list_node().items}
    assert set(nodes) == {s.name for s in world.NODES}
    assert all(ready(n) == "True" for n in nodes.values())
    servers = [n for n, o in nodes.items() if o.metadata.labels.get("node-role.kubernetes.io/etcd")]
    assert sorted(servers) == ["k3s-server-1", "k3s-server-2", "k3s-server-3"]
    hosts = [world.node_spec(n).host for n in servers]
    assert hosts.count("pve1") == 2  # losing pve1 loses quorum
    secrets = core(kube).list_namespaced_secret("kube-system").items
    assert {s.metadata.name for s in secrets} >= {f"{n}.node-password.k3s" for n in nodes}

    co = custom(kube)
    ks = co.list_cluster_custom_object("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")[
        "items"
    ]
    assert [k["metadata"]["name"] for k in ks if k["spec"].get("suspend")] == ["experiments"]
    hrs = co.list_cluster_custom_object("helm.toolkit.fluxcd.io", "v2", "helmreleases")["items"]
    failing = [
        h["metadata"]["name"]
        for h in hrs
        if any(c["type"] == "Ready" and c["status"] == "False" for c in h["status"]["conditions"])
    ]
    assert failing == ["grafana"]

    vols = co.list_namespaced_custom_object("longhorn.io", "v1beta2", "longhorn-system", "volumes")[
        "items"
    ]
    reps = co.list_namespaced_custom_object(
        "longhorn.io", "v1beta2", "longhorn-system", "replicas"
    )["items"]
    assert len(vols) == 6
    by_pvc = {v["status"]["kubernetesStatus"]["pvcName"]: v for v in vols}
    assert by_pvc["grafana-data"]["status"]["robustness"] == "degraded"
    assert by_pvc["archive"]["status"]["state"] == "detached"
    media = by_pvc["media"]["metadata"]["name"]
    healthy_nodes = {
        r["spec"]["nodeID"]
        for r in reps
        if r["spec"]["volumeName"] == media and not r["spec"]["failedAt"]
    }
    assert healthy_nodes == {"k3s-agent-1"}
    assert len({r["spec"]["nodeID"] for r in reps}) == 5  # spread over every node

    clusters = co.list_namespaced_custom_object(
        "postgresql.cnpg.io", "v1", "databases", "clusters"
    )["items"]
    archiving = {
        c["metadata"]["name"]: next(
            x for x in c["status"]["conditions"] if x["type"] == "ContinuousArchiving"
        )["status"]
        for c in clusters
    }
    assert archiving == {"pg-main": "True", "pg-auth": "False"}

    snaps = co.list_cluster_custom_object("k3s.cattle.io", "v1", "etcdsnapshotfiles")["items"]
    assert {s["spec"]["nodeName"] for s in snaps} == set(servers)

    pods = core(kube).list_pod_for_all_namespaces().items
    assert {p.spec.node_name for p in pods} == set(nodes)
    assert any(r.kind == "DaemonSet" for p in pods for r in p.metadata.owner_references or [])
    assert any(v.persistent_volume_claim for p in pods for v in p.spec.volumes or [])
    on_agent = core(kube).list_pod_for_all_namespaces(field_selector="spec.nodeName=k3s-agent-1")
    assert {p.spec.node_name for p in on_agent.items} == {"k3s-agent-1"}
    client, api = kube
    pdbs = client.PolicyV1Api(api).list_pod_disruption_budget_for_all_namespaces().items
    assert any(p.status.disruptions_allowed == 0 for p in pdbs)


def test_seed_proxmox(pve: Any) -> None:
    assert {n["node"] for n in pve.nodes.get()} == {"pve1", "pve2"}
    for spec in world.NODES:
        status = pve.nodes(spec.host).qemu(spec.vmid).status.current.get()
        assert (status["name"], status["status"]) == (spec.name, "running")


def test_seed_object_store(s3: Any) -> None:
    now = datetime.now(UTC)
    for vol in world.VOLUMES:
        cfg = json.loads(
            s3.get_object(
                Bucket=world.BUCKETS["longhorn"], Key=longhorn_volume_dir(vol.name) + "/volume.cfg"
            )["Body"].read()
        )
        age = now - datetime.fromisoformat(cfg["LastBackupAt"].replace("Z", "+00:00"))
        if vol.pvc == "archive":
            assert timedelta(days=2.9) < age < timedelta(days=3.1)
        else:
            assert age < timedelta(days=1)
    info = s3.list_objects_v2(Bucket=world.BUCKETS["cnpg"], Prefix="pg-main/base/")["Contents"]
    assert len([o for o in info if o["Key"].endswith("backup.info")]) == 3
    etcd = s3.list_objects_v2(Bucket=world.BUCKETS["etcd"], Prefix="k3s-etcd/etcd-snapshot-")
    assert etcd["KeyCount"] == 2


# ------------------------------------------------------------------------ refusals


def test_proxmox_refuses_to_destroy_a_running_vm(pve: Any, lab: Lab) -> None:
    from proxmoxer import ResourceException

    with pytest.raises(ResourceException, match="VM 103 is running - destroy failed"):
        pve.nodes("pve2").qemu(103).delete(purge=1)
    assert lab.world.vm("k3s-server-3").exists


def test_longhorn_refuses_to_delete_a_live_node(kube: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as refused:
        custom(kube).delete_namespaced_custom_object(
            "longhorn.io", "v1beta2", "longhorn-system", "nodes", "k3s-server-1"
        )
    assert refused.value.status == 422
    body = json.loads(refused.value.body)
    assert 'admission webhook "validator.longhorn.io" denied the request' in body["message"]
    assert "node schedulable true" in body["message"]
    custom(kube).get_namespaced_custom_object(
        "longhorn.io", "v1beta2", "longhorn-system", "nodes", "k3s-server-1"
    )


@pytest.mark.parametrize("version", list(world.LonghornVersion), ids=str)
def test_longhorn_validates_deleting_its_node_from_v1_10(
        lab: Lab, kube: Any, version: world.LonghornVersion) -> None:
    """longhorn-manager webhook/resources/node/validator.go: up to v1.9 a DELETE of a Longhorn
    Node is not validated; from v1.10 it is refused while the node is schedulable or holds a
    replica, and allowed when gone, unschedulable and empty, or while Longhorn uninstalls."""
    from kubernetes.client.exceptions import ApiException

    from lab.seed.longhorn import longhorn_node, replica_object

    co = custom(kube)
    lh = ("longhorn.io", "v1beta2", world.LONGHORN_NS)
    now = datetime.now(UTC)
    lab.world.run_longhorn(version)

    def ghost(schedulable: bool, annotations: dict[str, str] | None = None) -> None:
        node = longhorn_node("k3s-ghost", now)  # no Kubernetes node: KubernetesNodeGone
        node["spec"]["allowScheduling"] = schedulable
        node["metadata"]["annotations"] = annotations or {}
        lab.world.put([node])
        lab.world.wait_for(lambda: any(
            c["type"] == "Ready" and c.get("reason") == "KubernetesNodeGone"
            for c in co.get_namespaced_custom_object(*lh, "nodes", "k3s-ghost")["status"].get(
                "conditions") or []), WAIT, "the ghost node KubernetesNodeGone")

    def delete() -> int:
        try:
            co.delete_namespaced_custom_object(*lh, "nodes", "k3s-ghost")
        except ApiException as exc:
            assert 'admission webhook "validator.longhorn.io" denied' in json.loads(
                exc.body)["message"]
            return int(exc.status)
        return 200

    try:
        validated = version is world.LonghornVersion.V1_10
        ghost(schedulable=True)
        assert delete() == (422 if validated else 200)
        replica = replica_object("pvc-ghost", "k3s-ghost", "r-0", False, False, now)
        lab.world.put([replica])
        ghost(schedulable=False)
        assert delete() == (422 if validated else 200)
        ghost(schedulable=False, annotations={"longhorn.io/delete-node-from-longhorn": ""})
        assert delete() == 200  # the uninstaller's deletion
        co.delete_namespaced_custom_object(*lh, "replicas", replica["metadata"]["name"])
        ghost(schedulable=False)
        assert delete() == 200  # gone, unschedulable, nothing on it: every version allows
    finally:
        lab.world.run_longhorn(world.LonghornVersion.V1_10)


def test_eviction_blocked_by_a_disruption_budget_is_429(kube: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    client, _ = kube
    eviction = client.V1Eviction(
        metadata=client.V1ObjectMeta(name="web-7d9f8b6c5-x2x7q", namespace="apps")
    )
    with pytest.raises(ApiException) as blocked:
        core(kube).create_namespaced_pod_eviction("web-7d9f8b6c5-x2x7q", "apps", eviction)
    assert blocked.value.status == 429
    assert "disruption budget web" in blocked.value.body
    core(kube).read_namespaced_pod("web-7d9f8b6c5-x2x7q", "apps")
    # an eviction a budget allows goes through
    ok = client.V1Eviction(
        metadata=client.V1ObjectMeta(name="coredns-6799fbcd5-7kq2m", namespace="kube-system")
    )
    core(kube).create_namespaced_pod_eviction("coredns-6799fbcd5-7kq2m", "kube-system", ok)
    names = [p.metadata.name for p in core(kube).list_namespaced_pod("kube-system").items]
    assert "coredns-6799fbcd5-7kq2m" not in names


def test_fenced_vm_makes_its_node_not_ready(lab: Lab, pve: Any, kube: Any) -> None:
    pve.nodes("pve2").qemu(105).status.stop.post()
    lab.world.wait_for(
        lambda: ready(core(kube).read_node("k3s-agent-2")) == "Unknown",
        WAIT,
        "k3s-agent-2 NotReady",
    )
    node = core(kube).read_node("k3s-agent-2")
    assert {t.key for t in node.spec.taints} == {"node.kubernetes.io/unreachable"}
    lab.world.wait_for(
        lambda: not lab.world.ssh_up("k3s-agent-2"), WAIT, "sshd of k3s-agent-2 down"
    )
    lab.world.wait_for(
        lambda: (
            custom(kube).get_namespaced_custom_object(
                "longhorn.io", "v1beta2", "longhorn-system", "nodes", "k3s-agent-2"
            )["status"]["conditions"][0]["reason"]
            == "KubernetesNodeNotReady"
        ),
        WAIT,
        "Longhorn node k3s-agent-2 not ready",
    )


def test_server_node_delete_removes_its_etcd_member_then_join_restores_it(
    lab: Lab, kube: Any, tmp_path: Path
) -> None:
    import ansible_runner

    assert "k3s-server-3" in {m.node for m in lab.world.etcd_members()}
    name_key = "etcd.k3s.cattle.io/node-name"
    member_name = core(kube).read_node("k3s-server-3").metadata.annotations[name_key]
    core(kube).patch_node("k3s-server-3", {"metadata": {"annotations": {name_key: None}}})
    core(kube).delete_node("k3s-server-3")
    node = core(kube).read_node("k3s-server-3")  # the finalizers hold it a while
    assert node.metadata.deletion_timestamp is not None
    # K3s's finalizer cannot name the member without the annotation: it errors and stays
    lab.world.wait_for(
        lambda: any("node name annotation for node k3s-server-3 not found" in e
                    for e in lab.world.events()),
        WAIT,
        "K3s's etcd finalizer failing without the node-name annotation",
    )
    assert "k3s-server-3" in {m.node for m in lab.world.etcd_members()}
    assert "wrangler.cattle.io/managed-etcd-controller" in core(kube).read_node(
        "k3s-server-3").metadata.finalizers
    core(kube).patch_node("k3s-server-3", {"metadata": {"annotations": {name_key: member_name}}})
    lab.world.wait_for(
        lambda: "k3s-server-3" not in {m.node for m in lab.world.etcd_members()},
        WAIT,
        "etcd member of k3s-server-3 removed",
    )
    lab.world.wait_for(
        lambda: "k3s-server-3" not in {n.metadata.name for n in core(kube).list_node().items},
        WAIT,
        "Node gone",
    )
    secrets = {s.metadata.name for s in core(kube).list_namespaced_secret("kube-system").items}
    assert "k3s-server-3.node-password.k3s" not in secrets

    assert lab.paths is not None
    result = ansible_runner.run(
        private_data_dir=str(tmp_path),
        project_dir=str(lab.paths.ansible),
        playbook="k3s-join.yml",
        inventory=str(lab.paths.ansible_inventory),
        limit="k3s-server-3",
        quiet=True,
        envvars={"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])},
    )
    assert (result.status, result.rc) == ("successful", 0), result.stdout.read()
    lab.world.wait_for(
        lambda: ready(core(kube).read_node("k3s-server-3")) == "True",
        WAIT,
        "k3s-server-3 Ready after joining",
    )
    lab.world.wait_for(
        lambda: "k3s-server-3" in {m.node for m in lab.world.etcd_members()},
        WAIT,
        "etcd member of k3s-server-3 back",
    )
    events = [e for e in result.events if e["event"] == "runner_on_ok"]
    assert not any("PVEAPIToken" in json.dumps(e) for e in events)


def test_terraform_recreates_a_destroyed_vm_with_a_new_host_key(
    lab: Lab, pve: Any, kube: Any
) -> None:
    from proxmoxer.tools import Tasks

    assert lab.paths is not None
    address = 'proxmox_virtual_environment_vm.k3s["k3s-agent-1"]'
    old_key = lab.world.ssh_host_key("k3s-agent-1")
    old_uuid = lab.world.vm("k3s-agent-1").smbios_uuid
    Tasks.blocking_status(pve, pve.nodes("pve2").qemu(104).status.stop.post(), 10, 0.05)
    Tasks.blocking_status(pve, pve.nodes("pve2").qemu(104).delete(purge=1), 10, 0.05)
    assert not lab.world.vm("k3s-agent-1").exists

    def terraform(*args: str) -> tuple[int, list[dict[str, Any]]]:
        proc = subprocess.run(
            ["terraform", *args],
            cwd=lab.paths.terraform,
            env={**os.environ, **lab.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines() if line]

    rc, lines = terraform(
        "apply", f"-target={address}", "-auto-approve", "-input=false", "-no-color", "-json"
    )
    assert rc == 0, lines
    types = [line["type"] for line in lines]
    assert types[0] == "version"
    assert all({"@level", "@message", "@module", "@timestamp"} <= set(line) for line in lines)
    drift = next(line for line in lines if line["type"] == "resource_drift")
    assert drift["change"]["action"] == "delete"
    change = next(line for line in lines if line["type"] == "planned_change")
    assert (change["change"]["resource"]["addr"], change["change"]["action"]) == (address, "create")
    done = next(line for line in lines if line["type"] == "apply_complete")
    assert done["hook"]["id_value"] == "104"
    assert lines[-1]["type"] == "outputs"
    vm = lab.world.vm("k3s-agent-1")
    assert vm.status == "running" and vm.smbios_uuid != old_uuid
    assert lab.world.ssh_host_key("k3s-agent-1") != old_key

    def served_key() -> str:
        scan = subprocess.run(
            [
                "ssh-keyscan",
                "-T",
                "2",
                "-t",
                "ed25519",
                "-p",
                str(lab.world.ssh_port("k3s-agent-1")),
                "127.0.0.1",
            ],
            capture_output=True,
            text=True,
        )
        return scan.stdout.split()[-1] if scan.stdout.strip() else ""

    lab.world.wait_for(
        lambda: served_key() == lab.world.ssh_host_key("k3s-agent-1"),
        WAIT,
        "sshd serving the new host key",
    )
    # a new VM is not a K3s node until it joins: the old Node goes NotReady
    lab.world.wait_for(
        lambda: ready(core(kube).read_node("k3s-agent-1")) != "True",
        WAIT,
        "k3s-agent-1 NotReady on the fresh VM",
    )
    rc, lines = terraform("apply", f"-target={address}", "-auto-approve", "-json")
    assert rc == 0
    summary = [line for line in lines if line["type"] == "change_summary"]
    assert summary[0]["changes"]["add"] == 0  # a retry after success is a no-op


def test_terraform_honours_the_state_lock(lab: Lab) -> None:
    assert lab.paths is not None
    held = terraform_stub.write_lock(lab.paths.terraform, "OperationTypeApply", who="bob@ops")
    assert held is not None
    try:
        proc = subprocess.run(
            ["terraform", "plan", "-json", "-input=false"],
            cwd=lab.paths.terraform,
            env={**os.environ, **lab.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1
        diag = [
            json.loads(line)
            for line in proc.stdout.splitlines()
            if json.loads(line)["type"] == "diagnostic"
        ]
        assert diag[0]["diagnostic"]["summary"] == "Error acquiring the state lock"
        detail = diag[0]["diagnostic"]["detail"]
        assert f"ID:        {held['ID']}" in detail and "Who:       bob@ops" in detail
        assert "Created:" in detail
    finally:
        unlock = subprocess.run(
            ["terraform", "force-unlock", "-force", held["ID"]],
            cwd=lab.paths.terraform,
            env={**os.environ, **lab.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert unlock.returncode == 0
    assert not (lab.paths.terraform / terraform_stub.LOCK_INFO).exists()


def test_flux_reconciles_requested_objects_and_ignores_suspended(lab: Lab, kube: Any) -> None:
    co = custom(kube)
    token = datetime.now(UTC).isoformat()
    patch = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}
    for name in ("apps", "experiments"):
        co.patch_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io", "v1", "flux-system", "kustomizations", name, patch
        )
    co.patch_namespaced_custom_object(
        "helm.toolkit.fluxcd.io", "v2", "monitoring", "helmreleases", "grafana", patch
    )

    def handled(group: str, version: str, ns: str, plural: str, name: str) -> dict | None:
        obj = co.get_namespaced_custom_object(group, version, ns, plural, name)
        return obj if obj["status"].get("lastHandledReconcileAt") == token else None

    apps = lab.world.wait_for(
        lambda: handled(
            "kustomize.toolkit.fluxcd.io", "v1", "flux-system", "kustomizations", "apps"
        ),
        WAIT,
        "apps reconciled",
    )
    ready_cond = next(c for c in apps["status"]["conditions"] if c["type"] == "Ready")
    assert ready_cond["status"] == "True"
    assert apps["status"]["observedGeneration"] == apps["metadata"]["generation"]
    grafana = lab.world.wait_for(
        lambda: handled("helm.toolkit.fluxcd.io", "v2", "monitoring", "helmreleases", "grafana"),
        WAIT,
        "grafana handled",
    )
    failed = next(c for c in grafana["status"]["conditions"] if c["type"] == "Ready")
    assert failed["status"] == "False" and "Helm upgrade failed" in failed["message"]
    experiments = co.get_namespaced_custom_object(
        "kustomize.toolkit.fluxcd.io", "v1", "flux-system", "kustomizations", "experiments"
    )
    assert "lastHandledReconcileAt" not in experiments["status"]


def test_flux_bootstrap_applies_the_sync_objects_and_fails_on_a_dead_api(
    lab: Lab, tmp_path: Path
) -> None:
    argv = load_inventory(lab.inventory_path).iac.flux_bootstrap

    def bootstrap(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv, *extra],
            env={**os.environ, **lab.env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = bootstrap()
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "✔ GitRepository flux-system/flux-system unchanged" in lines  # the seed's
    assert "✔ Kustomization reconciled successfully" in lines
    assert lines[-1] == "✔ bootstrap finished"

    dead_api = f"http://127.0.0.1:{dead_port()}"
    dead = tmp_path / "kubeconfig"
    dead.write_text(yaml.safe_dump(files.kubeconfig(dead_api, "token")))
    failed = bootstrap(f"--kubeconfig={dead}")
    assert failed.returncode == 1
    last = failed.stdout.splitlines()[-1]
    assert last.startswith(f"✗ the Kubernetes API at {dead_api} is unreachable"), last
    assert "Connection refused" in last


def test_longhorn_backup_target_sync_pulls_the_store_into_backup_objects(
        lab: Lab, kube: Any, s3: Any) -> None:
    """Lost Backup and BackupVolume objects come back from the store on a requested sync, with
    what the store recorded: the PVC only when the backup's cfg carries KubernetesStatus, the
    storage class from volume.cfg (longhorn-manager backup_target/backup_volume controllers)."""
    co = custom(kube)
    lh = ("longhorn.io", "v1beta2", world.LONGHORN_NS)
    vol = world.VOLUMES[0]
    bvs = [b for b in co.list_namespaced_custom_object(*lh, "backupvolumes")["items"]
           if b["spec"].get("volumeName") == vol.name]
    backups = [b for b in co.list_namespaced_custom_object(*lh, "backups")["items"]
               if b["status"].get("volumeName") == vol.name]
    for obj, plural in [*((b, "backupvolumes") for b in bvs), *((b, "backups") for b in backups)]:
        co.delete_namespaced_custom_object(*lh, plural, obj["metadata"]["name"])
    key = f"{longhorn_volume_dir(vol.name)}/backups/backup_backup-bare.cfg"
    s3.put_object(Bucket=world.BUCKETS["longhorn"], Key=key, Body=json.dumps({
        "Name": "backup-bare", "VolumeName": vol.name, "CreatedTime": "2026-01-01T00:00:00Z",
        "SnapshotCreatedAt": "2026-01-01T00:00:00Z", "Size": "4096",
        "Labels": {"longhorn.io/volume-access-mode": "rwo"}}).encode())

    # a generous deadline: a sync reads the whole store
    asked = sync_longhorn_target(co, 4 * WAIT)
    target = co.get_namespaced_custom_object(*lh, "backuptargets", "default")
    bv = next(b for b in co.list_namespaced_custom_object(*lh, "backupvolumes")["items"]
              if b["spec"].get("volumeName") == vol.name)
    found = {b["metadata"]["name"]: b
             for b in co.list_namespaced_custom_object(*lh, "backups")["items"]
             if b["status"].get("volumeName") == vol.name}
    assert len(found) == len(backups) + 1
    bare = found.pop("backup-bare")
    assert "KubernetesStatus" not in bare["status"]["labels"]  # nothing invented
    for backup in found.values():
        recorded = json.loads(backup["status"]["labels"]["KubernetesStatus"])
        assert (recorded["namespace"], recorded["pvcName"]) == (vol.namespace, vol.pvc)
        assert backup["status"]["volumeSize"] == str(vol.size_gi * 1024**3)
    assert bv["status"]["storageClassName"] == "longhorn"
    assert target["status"]["available"] and bv["status"]["lastSyncedAt"] >= asked
    s3.delete_object(Bucket=world.BUCKETS["longhorn"], Key=key)
    co.delete_namespaced_custom_object(*lh, "backups", "backup-bare")


def test_flux_applies_a_new_kustomization_at_once_unless_dependson_holds_it(
        lab: Lab, kube: Any) -> None:
    """kustomize-controller: a created Kustomization is applied without any request; one whose
    dependency is not Ready is held (DependencyNotReady, nothing applied) until it is."""
    co = custom(kube)
    ks = ("kustomize.toolkit.fluxcd.io", "v1", "flux-system", "kustomizations")

    def body(name: str, depends: list[str]) -> dict[str, Any]:
        spec: dict[str, Any] = {"interval": "10m", "path": f"./{name}", "prune": True,
                                "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}
        if depends:
            spec["dependsOn"] = [{"name": d} for d in depends]
        return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": name, "namespace": "flux-system", "generation": 1},
                "spec": spec}

    co.create_namespaced_custom_object(*ks, body("gate", []) | {"spec": {
        **body("gate", [])["spec"], "suspend": True}})
    co.create_namespaced_custom_object(*ks, body("held-app", ["gate"]))
    co.create_namespaced_custom_object(*ks, body("free-app", []))

    def applied(name: str) -> dict[str, Any] | None:
        obj = co.get_namespaced_custom_object(*ks, name)
        return obj if (obj.get("status") or {}).get("lastAppliedRevision") else None

    lab.world.wait_for(lambda: applied("free-app"), WAIT, "free-app applied unasked")

    def blocked() -> dict[str, Any] | None:
        obj = co.get_namespaced_custom_object(*ks, "held-app")
        ready = [c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == "Ready"]
        return obj if ready and ready[0]["reason"] == "DependencyNotReady" else None

    held = lab.world.wait_for(blocked, WAIT, "held-app waiting for its dependency")
    assert not held["status"].get("lastAppliedRevision")
    co.patch_namespaced_custom_object(*ks, "gate", {"spec": {"suspend": False}})
    lab.world.wait_for(lambda: applied("held-app"), WAIT, "held-app applied once gate is Ready")
    for name in ("gate", "held-app", "free-app"):
        co.patch_namespaced_custom_object(*ks, name, {"metadata": {"finalizers": None}})
        co.delete_namespaced_custom_object(*ks, name)


def test_helm_controller_recreates_a_deleted_release_object_only_when_forced_or_drifting(
        lab: Lab, kube: Any) -> None:
    """fluxcd/helm-controller: with drift detection off (the default) a reconcile leaves an
    in-sync release's deleted object missing; forceAt not equal to requestedAt is recorded but
    not acted on; a matching forceAt upgrades (a new revision, the object back); with
    driftDetection.mode enabled a plain reconcile corrects the drift without an upgrade."""
    from kubernetes.client.exceptions import ApiException

    client, api = kube
    apps_api, co = client.AppsV1Api(api), custom(kube)
    hr = ("helm.toolkit.fluxcd.io", "v2", "apps", "helmreleases", "podinfo")

    def request(token: str, force: str | None = None, spec: dict | None = None) -> dict:
        annotations = {"reconcile.fluxcd.io/requestedAt": token,
                       "reconcile.fluxcd.io/forceAt": force}
        co.patch_namespaced_custom_object(*hr, {"metadata": {"annotations": annotations},
                                                **({"spec": spec} if spec else {})})
        return lab.world.wait_for(
            lambda: (o := co.get_namespaced_custom_object(*hr))["status"].get(
                "lastHandledReconcileAt") == token and o, WAIT, f"podinfo handled {token}")

    def present() -> bool:
        try:
            apps_api.read_namespaced_deployment("podinfo", "apps")
        except ApiException as exc:
            assert exc.status == 404
            return False
        return True

    apps_api.delete_namespaced_deployment("podinfo", "apps")
    request("plain")
    assert not present()
    mismatched = request("second", force="not-the-token")
    assert mismatched["status"]["lastHandledForceAt"] == "not-the-token"
    assert not present()
    forced = request("third", force="third")
    assert present()
    assert forced["status"]["lastHandledForceAt"] == "third"
    revision = forced["status"]["history"][0]["version"]
    assert revision == 4
    apps_api.delete_namespaced_deployment("podinfo", "apps")
    drift = request("fourth", spec={"driftDetection": {"mode": "enabled"}})
    assert present()
    assert drift["status"]["history"][0]["version"] == revision  # corrected, not upgraded
    co.patch_namespaced_custom_object(*hr, {"spec": {"driftDetection": None}})


def test_backup_target_sync_deletes_what_the_store_no_longer_holds(
        lab: Lab, kube: Any, s3: Any) -> None:
    """longhorn-manager backup_target_controller.go / backup_volume_controller.go: a sync
    deletes a Backup whose cfg is gone and a BackupVolume (with its Backups) whose volume is
    gone; never a backup this cluster is still taking, nor one of another target."""
    co = custom(kube)
    lh = ("longhorn.io", "v1beta2", world.LONGHORN_NS)
    bucket, base = world.BUCKETS["longhorn"], longhorn_volume_dir("pvc-going")

    def put_cfg(key: str, body: dict[str, Any]) -> None:
        s3.put_object(Bucket=bucket, Key=f"{base}/{key}", Body=json.dumps(body).encode())

    put_cfg("volume.cfg", {"Name": "pvc-going", "Size": "1073741824", "Labels": None,
                           "CreatedTime": "2026-01-01T00:00:00Z", "LastBackupName": "backup-g2",
                           "LastBackupAt": "2026-01-02T00:00:00Z", "BlockCount": "0"})
    for name, day in (("backup-g1", "01"), ("backup-g2", "02")):
        put_cfg(f"backups/backup_{name}.cfg", {
            "Name": name, "VolumeName": "pvc-going", "CreatedTime": f"2026-01-{day}T00:00:00Z",
            "SnapshotCreatedAt": f"2026-01-{day}T00:00:00Z", "Size": "4096", "Labels": {}})

    def backups() -> set[str]:
        return {b["metadata"]["name"] for b in co.list_namespaced_custom_object(*lh, "backups")[
            "items"] if (b["metadata"].get("labels") or {}).get("backup-volume") == "pvc-going"}

    def volumes() -> set[str]:
        return {b["spec"]["volumeName"] for b in co.list_namespaced_custom_object(
            *lh, "backupvolumes")["items"]}

    def sync() -> None:  # a pass that began after the change; it writes the target last
        sync_longhorn_target(co, 4 * WAIT)

    sync()
    assert backups() == {"backup-g1", "backup-g2"}
    assert "pvc-going" in volumes()
    taking = {"apiVersion": "longhorn.io/v1beta2", "kind": "Backup",
              "metadata": {"name": "backup-taking", "namespace": world.LONGHORN_NS,
                           "labels": {"backup-volume": "pvc-going", "backup-target": "default"}},
              "spec": {"snapshotName": "snap-now", "labels": {}},
              "status": {"state": "InProgress", "volumeName": "pvc-going"}}
    elsewhere = {**taking, "metadata": {**taking["metadata"], "name": "backup-elsewhere",
                                        "labels": {"backup-volume": "pvc-going",
                                                   "backup-target": "offsite"}},
                 "spec": {"snapshotName": "", "labels": {}},
                 "status": {"state": "Completed", "volumeName": "pvc-going"}}
    lab.world.put([taking, elsewhere])
    s3.delete_object(Bucket=bucket, Key=f"{base}/backups/backup_backup-g1.cfg")
    sync()
    assert backups() == {"backup-g2", "backup-taking", "backup-elsewhere"}
    assert any("Backup backup-g1 deleted: gone from the backup store" in e
               for e in lab.world.events())
    for key in ("volume.cfg", "backups/backup_backup-g2.cfg"):
        s3.delete_object(Bucket=bucket, Key=f"{base}/{key}")
    sync()
    assert "pvc-going" not in volumes()
    assert backups() == {"backup-elsewhere"}  # of another target: not this sync's to delete
    co.delete_namespaced_custom_object(*lh, "backups", "backup-elsewhere")


def test_cnpg_recovers_only_from_a_store_holding_the_servers_base_backup(lab: Lab) -> None:
    """The lab's CNPG operator checks the recovery's source for real (the Secrets, the bucket's
    base backups of that serverName), and the instance answers psql through pods/exec."""
    from adapters.errors import AdapterError
    from adapters.kubernetes import cnpg_drill
    from adapters.kubernetes.client import Kube
    from tests.support import wait_until

    kube = Kube(str(lab.kubeconfig))
    # generous: three recoveries, two reading the bucket, on a loaded machine
    cnpg_wait = WAIT * 4
    src = cnpg_drill.read_source(kube, "pg-auth", world.CNPG_NS)
    namespace = "drbot-drill-labcnpg"
    kube.call(kube.core.create_namespace, {"metadata": {"name": namespace}})

    def recover(name: str, server: str, credentials: str = cnpg_drill.CREDENTIALS) -> None:
        plan = cnpg_drill.plan(src, name=name, namespace=namespace, server_name=server,
                               object_store=None)
        creds = plan.cluster["spec"]["externalClusters"][0]["barmanObjectStore"]["s3Credentials"]
        creds["accessKeyId"]["name"] = credentials
        cnpg_drill.create(kube, plan, {"ACCESS_KEY_ID": b"drbot-lab", "REGION": b"us-east-1"})

    def reason(name: str) -> str | None:
        state = cnpg_drill.state(kube, name, namespace)
        return state.reason if state.reason not in ("", "Cluster Is Not Ready") else None

    recover("gone", "pg-gone")
    recover("nosecret", "pg-auth", credentials="not-copied")
    recover("good", "pg-auth")
    assert wait_until(lambda: reason("gone"), cnpg_wait, "the recovery to fail").startswith(
        "no target backup found: s3://drbot-lab-cnpg/ holds no base backup of server pg-gone")
    assert wait_until(lambda: reason("nosecret"), cnpg_wait, "the recovery to fail") == \
        f'secret "not-copied" not found in namespace {namespace}'
    wait_until(lambda: cnpg_drill.state(kube, "good", namespace).ready or None, cnpg_wait,
               "the recovery Cluster to be Ready")
    assert cnpg_drill.state(kube, "good", namespace).phase == "Cluster in healthy state"
    assert not cnpg_drill.state(kube, "gone", namespace).ready
    pod = cnpg_drill.primary_pod(kube, "good", namespace)
    ran = cnpg_drill.exec_in_pod(kube, pod, namespace,
                                 cnpg_drill.psql_argv("postgres", "SELECT count(*) FROM orders"))
    assert (ran.exit_code, ran.stdout) == (0, "40\n")
    ran = cnpg_drill.exec_in_pod(kube, pod, namespace,
                                 cnpg_drill.psql_argv("postgres", "DELETE FROM orders"))
    assert ran.exit_code == 1 and "readonly database" in ran.stderr  # the data is read-only
    with pytest.raises(AdapterError, match="not found"):
        cnpg_drill.exec_in_pod(kube, pod, namespace, ["psql"], container="sidecar")
    with pytest.raises(AdapterError, match='nothere was refused: Handshake status 404'):
        cnpg_drill.exec_in_pod(kube, "nothere", namespace, ["psql"])
    kube.call(kube.core.delete_namespace, namespace)
    wait_until(lambda: not [c for c in lab.world.kube_objects("postgresql.cnpg.io/v1",
                                                                "clusters")
                            if c["metadata"]["namespace"] == namespace] or None, cnpg_wait,
               "the namespace's Clusters to go")

"""The worker's ClusterRole grants exactly what drbot's Kubernetes adapters ask the API server.

The requests come from the emulators' request logs (see kube_requests.py): from every test of
this session that used the Kubernetes emulator or the lab, plus, when ``DRBOT_KUBE_REQUESTS_DIR``
is set, what earlier runs wrote there (``make test`` runs the suite with pytest-xdist first, each
worker writing its own file, then this file alone). When neither holds the adapter tests' share,
it runs them itself (in a subprocess with the same collector), so the check never passes on an
empty set. A few adapter paths that those tests do not reach (fallbacks) are driven here against
the emulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.errors import AdapterError
from adapters.kubernetes import flux, longhorn, nodes
from adapters.kubernetes.client import Kube
from lab.fakes import kube as seed
from lab.fakes.kube import StandaloneKube
from tests.ship.chart import find, manifests
from tests.ship.kube_requests import COLLECTOR, DIR, OUT, Access, from_emulator, merge, read_dir

ROOT = Path(__file__).parents[2]
DOMAIN_TESTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests/adapters/kubernetes").glob(
    "test_*.py") if p.name != "test_client.py")


# Every authenticated user may create a SelfSubjectAccessReview (the system:basic-user
# ClusterRole, kubernetes plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go): the doctor
# asks with it what the worker may do, and the worker's ClusterRole need not grant it.
BASIC_USER = {("create", "authorization.k8s.io", "selfsubjectaccessreviews")}


def granted() -> set[Access]:
    role = find(manifests(), "ClusterRole", "-worker")
    return {(verb, group, resource) for rule in role["rules"] for verb in rule["verbs"]
            for group in rule["apiGroups"] for resource in rule["resources"]}


def collected(tmp_path: Path) -> set[Access]:
    """What the tests asked for: this session's and the request directory's; the adapter tests
    are run now when neither holds them."""
    seen, files = set(COLLECTOR.seen), set(COLLECTOR.files)
    if os.environ.get(DIR):
        more, their_files = read_dir(Path(os.environ[DIR]))
        seen |= more
        files |= their_files
    if not set(DOMAIN_TESTS) <= files:
        out = tmp_path / "requests.json"
        env = {k: v for k, v in os.environ.items() if k != DIR} | {OUT: str(out)}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *DOMAIN_TESTS, "-q", "-x", "-p", "no:cacheprovider",
             "-p", "tests.ship.kube_requests"], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=240, check=False)
        assert done.returncode == 0, done.stdout[-3000:]
        data = json.loads(out.read_text())
        assert set(DOMAIN_TESTS) <= set(data["files"]), data["files"]
        merge(seen, data["seen"])
    return seen


def fallbacks(server: StandaloneKube, kube: Kube) -> set[Access]:
    """Adapter paths the adapter tests do not reach: listing backup targets, naming a PDB when
    the eviction message does not, reconciling a Bucket source."""
    longhorn.list_backup_targets(kube)
    pod = nodes.Pod("p", "apps", "n1", "Running", "ReplicaSet", False, False, {"app": "p"})
    assert nodes._pdb_names(kube, pod, "eviction refused") == []
    seed.add_source(server, "Bucket", "b")
    seed.add_kustomization(server, "apps", source=("Bucket", "b"))
    with pytest.raises(AdapterError):
        flux.reconcile_kustomization(kube, "apps", with_source=True, timeout=0.05, poll=0.01)
    return from_emulator(server)


def test_worker_cluster_role_is_exactly_what_the_adapters_use(
        kube_emulator: StandaloneKube, kube: Kube, tmp_path: Path) -> None:
    used = collected(tmp_path) | fallbacks(kube_emulator, kube)
    assert len(used) >= 40, f"too few requests collected to judge the ClusterRole: {sorted(used)}"
    rules = granted()
    assert sorted(used - rules - BASIC_USER) == [], "requests the ClusterRole would deny"
    assert sorted(rules - used) == [], "granted but never used: remove from the ClusterRole"


def test_bot_and_scheduler_accounts_hold_no_rights() -> None:
    docs = manifests()
    for component in ("bot", "scheduler"):
        account = find(docs, "ServiceAccount", f"-{component}")
        assert account["automountServiceAccountToken"] is False
        pod = find(docs, "Deployment", f"-{component}")["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    subjects = {s["name"] for b in bindings for s in b["subjects"]}
    assert subjects == {"drbot-worker"}

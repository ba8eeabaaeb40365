"""/dr rebuild-cluster end to end: refusals, then the four phases, each confirmed in the thread.

drbot runs standalone here (the test empties the inventory's `drbot_nodes`, as an operator
would after moving drbot off the cluster). alice requests; bob and carol approve. The lab's site
playbook fetches the new first server's k3s.yaml, its `flux-bootstrap` re-creates Flux's own
objects (lost with the datastore) and its Git credential comes back from `iac.flux_secret_file`.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from bot.config.inventory import load_inventory
from bot.records.jobs import Job
from lab import Lab
from lab.flux_bootstrap import USER_AGENT as FLUX_BOOTSTRAP
from lab.world import K3S_LOCAL_API
from tests.bot.harness import Harness, wait_until

RUN = 240.0  # the whole cluster on a loaded two-core machine; every wait ends on its condition
PHRASE = '--confirm "rebuild the whole cluster"'
KS = "kustomize.toolkit.fluxcd.io/v1"
LH = "longhorn.io/v1beta2"
FLUX_OWN = ((KS, "kustomizations"), ("source.toolkit.fluxcd.io/v1", "gitrepositories"),
            ("v1", "secrets"))  # what `flux bootstrap` installs, all named flux-system


def suspended(lab: Lab) -> dict[str, bool | None]:
    """Whether each Kustomization is suspended; None when it does not exist."""
    objs = {name: lab.world.kube_object(KS, "kustomizations", "flux-system", name)
            for name in ("flux-system", "infrastructure", "apps", "experiments")}
    return {name: None if obj is None else bool(obj["spec"].get("suspend"))
            for name, obj in objs.items()}


def flux_own(lab: Lab) -> list[dict[str, Any] | None]:
    return [lab.world.kube_object(gv, plural, "flux-system", "flux-system")
            for gv, plural in FLUX_OWN]


def reconciled(obj: dict[str, Any] | None) -> bool:
    ready = [c for c in ((obj or {}).get("status") or {}).get("conditions") or []
             if c["type"] == "Ready"]
    return bool(ready) and ready[0]["status"] == "True"


def result(job: Job, step: str) -> dict[str, Any]:
    return next(s.result for s in job.steps if s.name == step)


def mode(path: Path | str) -> int:
    return Path(path).stat().st_mode & 0o777


def secret_values(manifest: dict[str, Any]) -> list[str]:
    """What must never reach the thread: each value, encoded and decoded (line by line)."""
    encoded = list(manifest["data"].values())
    decoded = [line for v in encoded for line in base64.b64decode(v).decode().splitlines()
               if len(line) > 20 and "PRIVATE KEY" not in line]
    return encoded + decoded


def pvc(lab: Lab, ns: str, name: str) -> dict[str, Any] | None:
    return lab.world.kube_object("v1", "persistentvolumeclaims", ns, name)


def standalone(lab: Lab) -> None:
    data = yaml.safe_load(lab.inventory_path.read_text())
    data["drbot_nodes"] = []
    lab.inventory_path.write_text(yaml.safe_dump(data, sort_keys=False))


def waiting_for(drbot: Harness, job_id: str, phase: int) -> None:
    def at() -> bool:
        job = drbot.job(job_id)
        assert job.status not in ("failed", "cancelled", "refused"), job.error
        step = next(s for s in job.steps if s.name == f"confirm phase {phase}")
        return step.status == "running"
    wait_until(at, RUN, f"job {job_id} to wait for phase {phase}")


def test_refused_with_a_wrong_phrase_and_with_one_approval(drbot_lab: Harness, lab: Lab) -> None:
    standalone(lab)
    reply = drbot_lab.say('/dr rebuild-cluster --confirm "rebuild it"', who="alice")
    assert not reply.ok and PHRASE[10:] in reply.text
    job_id = drbot_lab.say(f"/dr rebuild-cluster {PHRASE}", who="alice").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "awaiting_approval", timeout=RUN)
    assert not drbot_lab.say(f"/dr approve {job_id}", who="alice").ok  # not one's own
    reply = drbot_lab.say(f"/dr approve {job_id}", who="bob")
    assert "(1/2); waiting for more approvals" in reply.text
    assert drbot_lab.job(job_id).status == "awaiting_approval"
    assert not drbot_lab.say(f"/dr confirm {job_id} 1", who="alice").ok  # not running yet
    assert all(vm.exists for vm in lab.world.vms().values())


def test_dry_run_lists_the_plan_and_changes_nothing(drbot_lab: Harness, lab: Lab) -> None:
    standalone(lab)
    before = (lab.world.vms(), suspended(lab), pvc(lab, "apps", "web-data"))
    job_id = drbot_lab.say("/dr rebuild-cluster --dry-run", who="alice").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "planned", timeout=RUN)
    plan = drbot_lab.wait_reply(job_id, "terraform destroy")
    for line in ("destroy and re-create VM 101 (k3s-server-1) on pve1",
                 "restore apps/web-data from backup-", "suspend Kustomization flux-system/apps",
                 "Kustomization flux-system/experiments is suspended and stays so"):
        assert line in plan
    assert "suspend Kustomization flux-system/infrastructure" not in plan
    assert (lab.world.vms(), suspended(lab), pvc(lab, "apps", "web-data")) == before
    # The live cluster moves on (here: apps suspended, as phase 2 does); the plan's notes follow
    # it, the digest approvals bind to does not, or a retry would need approval on every try.
    apps = lab.world.kube_object(KS, "kustomizations", "flux-system", "apps")
    assert apps is not None
    apps["spec"]["suspend"] = True
    lab.world.put([apps])
    again = drbot_lab.say("/dr rebuild-cluster --dry-run", who="alice").job_id
    assert again
    drbot_lab.wait_status(again, "planned", timeout=RUN)
    assert "Kustomization flux-system/apps is suspended and stays so" in drbot_lab.wait_reply(
        again, "terraform destroy")
    assert drbot_lab.job(again).digest == drbot_lab.job(job_id).digest


def test_rebuild_runs_its_phases_with_the_apps_suspended_until_restored(
        drbot_lab: Harness, lab: Lab) -> None:
    standalone(lab)
    assert lab.paths is not None
    old_uuids = {n: vm.smbios_uuid for n, vm in lab.world.vms().items()}
    old_kubeconfig = lab.kubeconfig.read_text()
    credential = yaml.safe_load(lab.paths.flux_secret_file.read_text())
    assert all(flux_own(lab))
    job_id = drbot_lab.say(f"/dr rebuild-cluster {PHRASE}", who="alice").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "awaiting_approval", timeout=RUN)
    drbot_lab.say(f"/dr approve {job_id}", who="bob")
    assert "queued to run" in drbot_lab.say(f"/dr approve {job_id}", who="carol").text

    waiting_for(drbot_lab, job_id, 1)
    assert not suspended(lab)["apps"] and all(vm.exists for vm in lab.world.vms().values())
    early = drbot_lab.say(f"/dr confirm {job_id} 2", who="alice")
    assert not early.ok and "not waiting for phase 2" in early.text
    assert drbot_lab.say(f"/dr confirm {job_id} 1", who="alice").ok  # the requester

    waiting_for(drbot_lab, job_id, 2)
    vms = lab.world.vms()
    assert all(vm.exists and vm.status == "running" for vm in vms.values())
    assert all(vm.smbios_uuid != old_uuids[n] for n, vm in vms.items())  # new machines
    assert pvc(lab, "apps", "web-data") is None  # the old datastore is gone
    assert flux_own(lab) == [None, None, None]  # and Flux's own objects with it
    assert lab.world.kube_objects(LH, "backups") == []  # and Longhorn's backup objects
    assert suspended(lab) == {"flux-system": None, "infrastructure": None, "apps": None,
                              "experiments": None}  # until Flux applies Git again
    installed_kubeconfig(drbot_lab, lab, job_id, old_kubeconfig)
    assert drbot_lab.say(f"/dr confirm {job_id} 2", who="bob").ok  # an approver

    waiting_for(drbot_lab, job_id, 3)
    flux_bootstrapped(drbot_lab, lab, job_id, credential)
    assert suspended(lab) == {"flux-system": False, "infrastructure": False, "apps": True,
                              "experiments": True}
    apps = lab.world.kube_object(KS, "kustomizations", "flux-system", "apps")
    assert apps and not apps.get("status", {}).get("lastAppliedRevision")  # dependsOn held it
    assert pvc(lab, "apps", "web-data") is None
    assert drbot_lab.say(f"/dr confirm {job_id} 3", who="carol").ok

    waiting_for(drbot_lab, job_id, 4)
    assert suspended(lab)["apps"]  # still, with every volume restored
    for ns, name in (("apps", "web-data"), ("apps", "gitea-data"), ("databases", "pg-main-1"),
                     ("apps", "archive")):
        claim = pvc(lab, ns, name)
        assert claim and claim["spec"]["volumeName"] == f"restore-{ns}-{name}"
        # as recorded in the store, pulled by the backup target's sync after the step began
        assert claim["spec"]["storageClassName"] == "longhorn"
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    restore_events = job_events(drbot_lab, job_id)
    assert "the store holds 6 volume(s)" in restore_events
    assert drbot_lab.say(f"/dr confirm {job_id} 4", who="alice").ok

    job = drbot_lab.wait_status(job_id, "succeeded", "failed", timeout=RUN)
    assert job.status == "succeeded", job.error
    assert suspended(lab) == {"flux-system": False, "infrastructure": False, "apps": False,
                              "experiments": True}
    assert "6 volume(s) restored" in (job.summary or "")
    assert "Resumed: flux-system/apps" in (job.summary or "")
    assert "kubeconfig installed" in (job.summary or "")
    drbot_lab.wait_settled(job_id, timeout=RUN)
    events = job_events(drbot_lab, job_id)
    assert "Secret flux-system/flux-system created from iac.flux_secret_file" in events
    thread = drbot_lab.frontend.threads[job_id]
    shown = "\n".join([events, *thread["replies"], *(card.text() for card in thread["cards"])])
    assert not [value for value in secret_values(credential) if value in shown]
    assert schema_problems(lab) == []  # what drbot and the lab wrote, as the real API holds it


def schema_problems(lab: Lab) -> list[str]:
    """Every foreign object in the lab's API checked against lab/schemas.py."""
    from lab import schemas

    kinds = [(LH, "volumes", "Volume"), (LH, "backups", "Backup"),
             (LH, "backupvolumes", "BackupVolume"), (LH, "backuptargets", "BackupTarget"),
             (LH, "nodes", "Node"), (LH, "replicas", "Replica"),
             (KS, "kustomizations", "Kustomization"),
             ("source.toolkit.fluxcd.io/v1", "gitrepositories", "GitRepository"),
             ("helm.toolkit.fluxcd.io/v2", "helmreleases", "HelmRelease"),
             ("postgresql.cnpg.io/v1", "clusters", "Cluster")]
    found = []
    for api, plural, kind in kinds:
        for obj in lab.world.kube_objects(api, plural):
            found += schemas.problems({**obj, "apiVersion": api, "kind": kind})
    return found


def flux_bootstrapped(drbot: Harness, lab: Lab, job_id: str, credential: dict[str, Any]) -> None:
    """Phase 2 ran the lab's flux-bootstrap, which re-created Flux's own objects through the
    kubeconfig phase 1 installed (its argument list names that file), and applied the Secret."""
    assert lab.paths is not None
    job = drbot.job(job_id)
    assert result(job, "flux bootstrap") == {"ran": str(lab.paths.flux_bootstrap)}
    assert result(job, "flux secret") == {"secret": "flux-system/flux-system",
                                          "action": "created"}
    kustomization, source, secret = flux_own(lab)
    assert reconciled(kustomization) and reconciled(source)  # as the bootstrap waited for
    created = [r.path for r in lab.world.kube_requests()
               if r.user_agent == FLUX_BOOTSTRAP and r.method.upper() == "POST"]
    assert [p.rsplit("/", 1)[1] for p in created] == ["gitrepositories", "kustomizations"]
    assert secret and secret["data"] == credential["data"]


def job_events(drbot: Harness, job_id: str) -> str:
    """Every message of the job's event stream (what its thread's replies and card show)."""
    messages, after = [], "0-0"
    while page := drbot.rt.events.read(job_id, after):
        messages += [event.message for event in page]
        after = page[-1].id
    return "\n".join(messages)


def installed_kubeconfig(drbot: Harness, lab: Lab, job_id: str, old: str) -> None:
    """Phase 1 installed the new first server's k3s.yaml, fetched by the site playbook, with its
    server (K3s's local API) set to the inventory's first endpoint; both files are private."""
    assert result(drbot.job(job_id), "kubeconfig") == {"kubeconfig": "installed",
                                                       "path": str(lab.kubeconfig)}
    fetched = Path(load_inventory(lab.inventory_path).iac.job_dir(job_id)) / "kubeconfig"
    assert mode(fetched) == 0o600 and mode(lab.kubeconfig) == 0o600
    k3s_yaml = yaml.safe_load(fetched.read_text())
    assert k3s_yaml["clusters"][0]["cluster"]["server"] == K3S_LOCAL_API
    new, before = yaml.safe_load(lab.kubeconfig.read_text()), yaml.safe_load(old)
    assert new["users"] == k3s_yaml["users"]  # the new cluster's admin credential
    assert new["current-context"] == "default"  # K3s's names, not the lab's
    assert new["clusters"][0]["cluster"]["server"] == lab.kube_url
    assert new["users"][0]["user"]["token"] != before["users"][0]["user"]["token"]

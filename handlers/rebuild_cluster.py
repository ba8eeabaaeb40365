"""/dr rebuild-cluster: scenario 4, the whole cluster built again from Terraform, Ansible, Flux
and the backups, in four phases, each started by a confirmation in the job's thread.

1. Terraform destroys and re-creates every VM of the inventory, the site playbook configures them
   all (the cluster-init server first starts a new etcd), drbot takes a fresh kubeconfig when the
   playbook leaves one, and every Node must be Ready.
2. Flux is bootstrapped with the inventory's argument list (``iac.flux_bootstrap``), its Git
   secret re-applied from ``iac.flux_secret_file`` (never echoed), and the application
   Kustomizations are suspended, so no app starts on an empty volume.
3. Every volume the object store holds is restored from its latest backup into a PVC named by
   the backup's recorded PVC and namespace and built as the backup recorded it, before the apps
   exist; the Backups are read once Longhorn's backup target has synced after the step began
   (``handlers.restore_set``). CNPG clusters and their recovery points are reported (their
   manifests must bootstrap from the object store).
4. The Kustomizations suspended in phase 2 are resumed and must become Ready.

Which Kustomizations are "application" ones: all but ``flux-system``, those another Kustomization
depends on (``spec.dependsOn``: infrastructure layers) and those that own the Longhorn or CNPG
operator HelmRelease (by the ``kustomize.toolkit.fluxcd.io/name`` label). One already suspended
is left so and not resumed. Flux applies a Kustomization as soon as bootstrap creates it, so an
app could start between bootstrap and the suspend step: the operator's Git keeps application
Kustomizations behind a ``dependsOn`` on the layer that installs Longhorn (README, scenario 4),
and phase 3 refuses when an app has applied a revision or one of its PVCs exists already.

The phases wait for ``/dr confirm <job> <phase>`` (handlers/confirm.py). The runbook refuses while
drbot itself runs on the cluster (inventory ``drbot_nodes``): run drbot standalone for this.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import yaml

from adapters.errors import AdapterError, Unreachable
from bot.errors import CommandError
from bot.records.locks import LockKey, exclusive, free
from bot.registry import runbook
from bot.runbook import PlanContext, Runbook, StepContext, StepDef
from handlers import iac, preflight, restore_set
from handlers.confirm import step_name, wait_for_confirmation
from handlers.rebuild_node import SSH_TIMEOUT, wait_ready

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from adapters.kubernetes.longhorn.backups import Backup
    from bot.config.inventory import Inventory

CONFIRM_TIMEOUT = 4 * 3600.0
BOOTSTRAP_TIMEOUT = 1800.0
RESTORE_TIMEOUT = 2 * 3600.0
SYNC_TIMEOUT = 1800.0  # Longhorn's default poll is 300 s; drbot also asks for a sync at once
JOB_TIMEOUT = 24 * 3600
FLUX_LABEL = "kustomize.toolkit.fluxcd.io/name"
OPERATORS = ("longhorn", "cloudnative-pg")
KEEP_RUNNING = ("flux-system",)

DESTROY, APPLY, SSH, SITE, KUBECONFIG, READY = ("terraform destroy", "terraform apply",
                                                "wait for SSH", "ansible site", "kubeconfig",
                                                "wait for Ready")
BOOTSTRAP, SECRET, SUSPEND = "flux bootstrap", "flux secret", "suspend apps"
RESTORE, CNPG, RESUME = "restore volumes", "report CNPG", "resume apps"
PHASES = {1: "rebuild the VMs and K3s", 2: "bootstrap Flux, apps suspended",
          3: "restore the volumes", 4: "resume the apps"}


def locks(args: dict[str, Any], inventory: Inventory) -> list[LockKey]:
    return [exclusive("cluster"), exclusive("etcd"), exclusive("iac"), free("drill")]


# -- live state ---------------------------------------------------------------------------------


def restore_plan(kube: Kube) -> list[Backup]:
    """The latest restorable backup of every PVC (``longhorn.restorable``), one per PVC."""
    from adapters.kubernetes import longhorn

    latest = longhorn.latest_restorable(longhorn.list_backups(kube))
    return [latest[k] for k in sorted(latest)]


def unrestorable(kube: Kube) -> list[str]:
    """Volumes with a PVC and no restorable backup: their data would be lost. The same test as
    the restore plan's, so a backup that records no PVC is not counted as coverage."""
    from adapters.kubernetes import longhorn

    covered = {b.volume for b in longhorn.latest_restorable(longhorn.list_backups(kube)).values()}
    return [preflight.pvc_of(v) for v in longhorn.list_volumes(kube)
            if v.pvc and v.name not in covered]


def check_cluster(kube: Kube, inventory: Inventory) -> None:
    """The preflight: drbot runs standalone, and every volume has a backup to restore from (an
    unreachable cluster is the disaster itself, not a refusal). /dr readiness runs it too."""
    preflight.check_drbot(inventory, list(inventory.nodes))
    try:
        missing = unrestorable(kube)
    except Unreachable:
        return
    if missing:
        raise CommandError("these volumes have no completed backup and would be lost: "
                           + ", ".join(missing) + ". Back them up first: "
                           + "; ".join(f"/dr backup-now longhorn {p}" for p in missing))


def app_kustomizations(kube: Kube) -> tuple[list[str], list[str]]:
    """(to suspend, already suspended) application Kustomizations as namespace/name."""
    from adapters.kubernetes import flux

    objs = flux.list_kustomizations(kube)
    keep = {f"flux-system/{n}" for n in KEEP_RUNNING}
    for obj in objs:
        keep.update(obj.depends_on)
    for hr in flux.list_helmreleases(kube):
        if hr.name in OPERATORS and hr.labels.get(FLUX_LABEL):
            keep.add(f"{hr.labels.get('kustomize.toolkit.fluxcd.io/namespace', 'flux-system')}/"
                     f"{hr.labels[FLUX_LABEL]}")
    apps = [(f"{o.namespace}/{o.name}", o.suspended) for o in objs]
    apps = sorted(a for a in apps if a[0] not in keep)
    return [n for n, s in apps if not s], [n for n, s in apps if s]


def suspended_apps(kube: Kube) -> list[str]:
    """Application Kustomizations that are suspended now (for tests and the dry run)."""
    return app_kustomizations(kube)[1]


# -- phase 1 ------------------------------------------------------------------------------------


def addresses(inventory: Inventory) -> list[str]:
    return [n.terraform_address for n in inventory.nodes.values()]


def terraform(step: StepContext, destroy: bool) -> dict[str, Any]:
    """Phase 1: destroy every VM of the inventory, or create them all again (iac.terraform_apply:
    deletions only when destroying, creations only when creating, of the inventory's addresses
    alone)."""
    from adapters.terraform_plan import Action

    targets = addresses(step.inventory)
    return iac.terraform_apply(step, targets, Action.DELETE if destroy else Action.CREATE,
                               f"{len(targets)} VMs")


def kubeconfig_dest(step: StepContext) -> str:
    return os.path.join(iac.job_dir(step.inventory, step.job_id), "kubeconfig")


def site(step: StepContext) -> dict[str, Any]:
    ansible = iac.require_iac(step.inventory).ansible
    hosts = [n.ansible_host for n in step.inventory.nodes.values()]
    return iac.run_playbook(step, ansible.site_playbook, hosts,
                            {"drbot_kubeconfig_dest": kubeconfig_dest(step)}, reset=hosts)


def configured_kubeconfig(step: StepContext) -> str:
    path = step.services.settings.kubeconfig or step.inventory.kubernetes.kubeconfig
    return str(path) if path else ""


def kubeconfig(step: StepContext) -> dict[str, Any]:
    """Install the kubeconfig the site playbook fetched from the new first server, if any."""
    fresh, current = kubeconfig_dest(step), configured_kubeconfig(step)
    if not os.path.isfile(fresh):
        iac.say(step, f"the playbooks left no kubeconfig at {fresh} (the site playbook may fetch "
                "/etc/rancher/k3s/k3s.yaml of the first server there: extravar "
                f"drbot_kubeconfig_dest); reusing {current or 'the in-cluster account'}")
        return {"kubeconfig": "reused", "path": current}
    try:
        data = yaml.safe_load(open(fresh, encoding="utf-8").read())  # noqa: SIM115
        clusters = data["clusters"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        raise CommandError(f"{fresh} is not a kubeconfig; check the site playbook") from None
    endpoints = step.inventory.kubernetes.endpoints
    for entry in clusters:
        server = str(entry.get("cluster", {}).get("server", ""))
        if endpoints and ("127.0.0.1" in server or "localhost" in server):
            entry["cluster"]["server"] = endpoints[0]
    if not current:
        raise CommandError(f"a fresh kubeconfig is at {fresh}, but drbot uses the in-cluster "
                           "account; set kubernetes.kubeconfig in the inventory to use it")
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(current), prefix=".kubeconfig-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(data, out)
    os.replace(temp, current)
    step.services.__dict__.pop("kube", None)  # the next call builds a client from the new file
    iac.say(step, f"installed the new cluster's kubeconfig at {current}")
    return {"kubeconfig": "installed", "path": current}


# -- phase 2 ------------------------------------------------------------------------------------


def bootstrap(step: StepContext) -> dict[str, Any]:
    from adapters import subprocesses

    argv = list(iac.require_iac(step.inventory).flux_bootstrap)
    if not argv:
        iac.say(step, "iac.flux_bootstrap is empty in the inventory: Flux bootstrap skipped "
                "(bootstrap it by hand if the new cluster has no Flux)")
        return {"skipped": "no iac.flux_bootstrap"}
    lines: list[str] = []
    rc = subprocesses.run(argv, hooks=iac.timed(step, argv[0]), on_line=lines.append,
                          timeout=BOOTSTRAP_TIMEOUT, what="flux bootstrap")
    if rc != 0:
        tail = " | ".join(line.strip() for line in lines[-3:] if line.strip())
        raise AdapterError(f"flux bootstrap exited {rc}: {tail[:400] or 'no output'}")
    return {"ran": argv[0]}


def apply_secret(step: StepContext) -> dict[str, Any]:
    """Create or update the Secret of ``iac.flux_secret_file`` (its content never leaves here)."""
    from adapters.kubernetes import namespaces

    path = iac.require_iac(step.inventory).flux_secret_file
    if not path:
        iac.say(step, "iac.flux_secret_file is not set: no bootstrap secret to re-apply")
        return {"skipped": "no iac.flux_secret_file"}
    body = yaml.safe_load(step.services.secret(path, "iac.flux_secret_file"))
    meta = body.get("metadata", {}) if isinstance(body, dict) else {}
    if not isinstance(body, dict) or body.get("kind") != "Secret" or not meta.get("name"):
        raise CommandError(f"iac.flux_secret_file ({path}) is not a Secret manifest with a name")
    ns, name = meta.get("namespace") or "flux-system", meta["name"]
    meta["namespace"] = ns
    action = namespaces.apply_secret(step.services.kube, body)
    iac.say(step, f"Secret {ns}/{name} {action} from iac.flux_secret_file")
    return {"secret": f"{ns}/{name}", "action": action}


def suspend_apps(step: StepContext) -> dict[str, Any]:
    from adapters.kubernetes import flux

    kube = step.services.kube
    if "ran" in step.results.get(BOOTSTRAP, {}):
        flux.reconcile_kustomization(kube, "flux-system", timeout=BOOTSTRAP_TIMEOUT,
                                     poll=step.inventory.flux.poll_seconds, hooks=step.hooks)
    # Recorded before the first suspend: a retry would see what this job suspended as
    # "already suspended", and phase 4 would leave those apps suspended for good.
    apps = step.intent("apps", lambda: dict(zip(("suspend", "already"),
                                                app_kustomizations(kube), strict=True)))
    for ref in apps["suspend"]:
        ns, name = ref.split("/", 1)
        flux.suspend(kube, "kustomization", name, ns)
        iac.say(step, f"Kustomization {ref} suspended", ref)
    return {"suspended": sorted(apps["suspend"]), "left_suspended": apps["already"]}


# -- phase 3 ------------------------------------------------------------------------------------


def expected(step: StepContext) -> restore_set.RestoreSet:
    """What this phase must restore: the store's volumes, read from Longhorn's Backups once its
    backup target has synced after this step began (``handlers.restore_set``)."""
    since = restore_set.sync_mark(datetime.now(UTC))
    stored = restore_set.stored_volumes(restore_set.open_store(step))
    iac.say(step, f"the store holds {len(stored)} volume(s); waiting for Longhorn's backup "
            "target to sync them")
    restore_set.wait_synced(step.services.kube, stored, since, timeout=SYNC_TIMEOUT,
                            poll=step.inventory.flux.poll_seconds, hooks=step.hooks)
    return restore_set.expected_set(step.services.kube, stored)


def refuse_started_apps(step: StepContext, wanted: restore_set.RestoreSet) -> None:
    """Refuse to restore under an application that already ran (see restore_set.started_apps)."""
    phase2 = step.results.get(SUSPEND, {})
    held = [*phase2.get("suspended", []), *phase2.get("left_suspended", [])]
    started = restore_set.started_apps(step.services.kube, held, wanted.planned)
    if started:
        raise CommandError(
            "an application started before its volumes were restored: " + "; ".join(started)
            + ". Its workloads may have written to empty volumes. Keep its Kustomization "
            "suspended, delete the PVCs it created (and their volumes), then /dr retry "
            f"{step.job_id}. Keep application Kustomizations behind a dependsOn in Git (see "
            "the README, scenario 4) so Flux cannot apply them before drbot suspends them")


def restore_all(step: StepContext) -> dict[str, Any]:
    """Every volume at once, bounded by Longhorn's per-node limit (handlers/parallel_restore)."""
    from handlers import parallel_restore

    wanted = expected(step)
    refuse_started_apps(step, wanted)
    items = [parallel_restore.Wanted(b, b.pvc_namespace, b.pvc)
             for b in planned_restores(step, wanted)]
    result = parallel_restore.restore_all(step, items, RESTORE_TIMEOUT)
    if wanted.missing:
        raise AdapterError(f"{len(wanted.missing)} volume(s) not restored "
                           f"({len(result['restored'])} done): " + "; ".join(wanted.missing)
                           + ". Fix them, then /dr retry " + step.job_id
                           + " (restored PVCs are kept)")
    return result


def planned_restores(step: StepContext, wanted: restore_set.RestoreSet) -> list[Backup]:
    """The backups to restore, chosen (after Longhorn's sync, see ``expected``) before the first
    restore and kept across attempts (a backup completing meanwhile must not change what a
    retry restores)."""
    from adapters.kubernetes import longhorn

    kube = step.services.kube
    names = step.intent("backups", lambda: [b.name for b in wanted.planned])
    known = {b.name: b for b in longhorn.list_backups(kube)}
    missing = [n for n in names if n not in known]
    if missing:
        raise AdapterError(f"backup(s) {', '.join(missing)} chosen for this job no longer exist; "
                           "check the backup target, then /dr retry " + step.job_id)
    return [known[n] for n in names]


def report_cnpg(step: StepContext) -> dict[str, Any]:
    from adapters.kubernetes import cnpg

    clusters = cnpg.list_clusters(step.services.kube)
    lines = [f"{c.namespace}/{c.name}: recovery from {c.first_recoverability_point or '?'} to "
             f"{c.last_successful_backup or '?'} (last base backup), archiving "
             f"{ {True: 'ok', False: 'FAILING', None: 'unknown'}[c.archiving] }"
             for c in clusters]
    for line in lines:
        iac.say(step, line)
    if not lines:
        iac.say(step, "no CNPG cluster exists yet: they come with the application "
                "Kustomizations; their manifests must bootstrap from the object store "
                "(spec.bootstrap.recovery)")
    return {"clusters": lines}


# -- phase 4 ------------------------------------------------------------------------------------


def resume_apps(step: StepContext) -> dict[str, Any]:
    from adapters.kubernetes import flux

    resumed = []
    for ref in step.results.get(SUSPEND, {}).get("suspended", []):
        ns, name = ref.split("/", 1)
        flux.resume(step.services.kube, "kustomization", name, ns,
                    timeout=step.inventory.flux.timeout_seconds, hooks=iac.timed(step, ref),
                    poll=step.inventory.flux.poll_seconds)
        resumed.append(ref)
    return {"resumed": resumed}


# -- the runbook --------------------------------------------------------------------------------


def confirm_step(phase: int) -> StepDef:
    return StepDef(step_name(phase), lambda s: wait_for_confirmation(
        s, phase, PHASES[phase], CONFIRM_TIMEOUT), f"phase {phase}",
        f"wait for /dr confirm <job> {phase} (requester or approver): {PHASES[phase]}")


def plan_steps(inventory: Inventory) -> list[StepDef]:
    names = list(inventory.nodes)
    hosts = ",".join(n.ansible_host for n in inventory.nodes.values())
    vms = f"{len(names)} VMs"
    return [
        confirm_step(1),
        StepDef(DESTROY, lambda s: terraform(s, destroy=True), vms,
                "terraform plan -destroy of every VM of the inventory, checked to delete only them, "
                "then applied", destructive=True),
        StepDef(APPLY, lambda s: terraform(s, destroy=False), vms,
                "create them all again (planned, checked to create only them, then applied)"),
        StepDef(SSH, lambda s: {"keys": iac.wait_for_ssh(
            s, [iac.ssh_endpoint(s.inventory, n) for n in names], SSH_TIMEOUT)}, vms,
                "wait until each answers SSH, accept the new host keys"),
        StepDef(SITE, site, hosts, "the site playbook on every host (the cluster-init server "
                "starts a new etcd)"),
        StepDef(KUBECONFIG, kubeconfig, "kubeconfig", "install the new cluster's kubeconfig if "
                "the playbook fetched one, else reuse the configured one"),
        StepDef(READY, lambda s: wait_ready(s, names), ", ".join(names), "every Node Ready"),
        confirm_step(2),
        StepDef(BOOTSTRAP, bootstrap, "flux", "run iac.flux_bootstrap (skipped when empty)"),
        StepDef(SECRET, apply_secret, "flux-system", "re-apply iac.flux_secret_file (never "
                "shown)"),
        StepDef(SUSPEND, suspend_apps, "Kustomizations", "suspend the application "
                "Kustomizations"),
        confirm_step(3),
        StepDef(RESTORE, restore_all, "Longhorn volumes", "wait until Longhorn's backup target "
                "has synced the store, then restore every stored volume's latest backup into "
                "its recorded PVC (a volume without one fails the step)"),
        StepDef(CNPG, report_cnpg, "CNPG clusters", "report clusters and recovery points"),
        confirm_step(4),
        StepDef(RESUME, resume_apps, "Kustomizations", "resume what phase 2 suspended, wait "
                "for Ready"),
    ]


def observe(kube: Kube) -> list[str]:
    """Notes read from the live cluster (an unreachable one is said so).

    They are notes, not targets: approvals bind to the targets, and what the live cluster shows
    moves on its own during a rebuild (Kustomizations suspended by phase 2, Backup CRs synced
    back in phase 3), so a retry would re-plan a different digest on every try and ask for
    approval again and again. What phase 2 suspends and phase 3 restores is decided by those
    phases, from live state and the object store, each after its own confirmation."""
    try:
        backups = restore_plan(kube)
        to_suspend, already = app_kustomizations(kube)
        missing = unrestorable(kube)
    except Unreachable as exc:
        return [f"the cluster does not answer ({exc}): the volumes to restore are read from "
                "Longhorn's backups once Flux has reinstalled it (phase 3)"]
    notes = [f"restore {b.pvc_namespace}/{b.pvc} from {b.name} (taken {b.created})"
             for b in backups]
    notes += [f"suspend Kustomization {k} until the restores are done" for k in to_suspend]
    notes += [f"Kustomization {k} is suspended and stays so" for k in already]
    return notes + [f"NO BACKUP: {p} (its data is lost)" for p in missing]


def summary(results: dict[str, dict[str, Any]]) -> str:
    restored = results.get(RESTORE, {}).get("restored", [])
    lines = [f"Cluster rebuilt: VMs created ({iac.counted(results.get(APPLY, {}), 'added')}), Nodes "
             f"Ready (etcd {results.get(READY, {}).get('etcd', '?')}); kubeconfig "
             f"{results.get(KUBECONFIG, {}).get('kubeconfig', '?')}.",
             f"{len(restored)} volume(s) restored: " + ", ".join(
                 f"{r['pvc']} ({r['backup']})" for r in restored)]
    lines += [f"CNPG {line}" for line in results.get(CNPG, {}).get("clusters", [])]
    lines.append("Resumed: " + (", ".join(results.get(RESUME, {}).get("resumed", [])) or "-"))
    return "\n".join(lines)


@runbook("rebuild-cluster",
         summary="rebuild the whole cluster from Terraform, Ansible, Flux and backups",
         locks=locks, timeout=JOB_TIMEOUT)
def rebuild_cluster(ctx: PlanContext) -> Runbook:
    inventory = ctx.inventory
    if not inventory.nodes:
        raise CommandError("the inventory lists no nodes: nothing to rebuild")
    iac.require_iac(inventory)
    revision = iac.revision(ctx.services)
    kube = ctx.services.kube

    def check() -> None:
        check_cluster(kube, inventory)

    vms = [f"destroy and re-create VM {n.vmid} ({name}) on {n.host}"
           for name, n in inventory.nodes.items()]
    targets = [*vms, *(f"terraform {a}" for a in addresses(inventory))]
    return Runbook(plan_steps(inventory), targets=targets, revision=revision,
                   notes=[*vms, *observe(kube)], preflight=check, summary=summary)

"""/dr drill cnpg <namespace/cluster>: CloudNativePG's restore path proven inside the cluster.

A single-instance recovery Cluster is created in the drill namespace (``drbot-drill-<job>``),
bootstrapped from the source cluster's object store (through the read-only ObjectStore the
inventory names for it, when it names one), with no ``backup`` and no ``plugins`` section: it
archives nowhere. When it is Ready, the inventory's read-only SQL checks run in its pod through
the Kubernetes exec API (``psql``, each query in a READ ONLY transaction). The report gives the
time until Ready (the restore time), the recovered point in time and what the checks found;
then the namespace goes, and with it the Cluster, the credentials Secret and the ObjectStore
copy. The source Cluster and its ObjectStore are only read; its Secrets are not read at all.

Cleanup, locks and the record are the Longhorn drill's (handlers/drill.py): the namespace is
recorded before it is created, removed when the drill ends, fails or is cancelled, and swept
when the worker died.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config.inventory import Inventory, SqlCheck
from bot.errors import CommandError
from bot.runbook import StepContext

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from adapters.kubernetes.cnpg_drill import RecoveryPlan
    from adapters.kubernetes.drills import CheckResult, DrillResult

POLL = 1.0
CLUSTER = "drill"  # the recovery Cluster's name in the drill namespace
DEFAULT_CHECK = SqlCheck(name="select 1", query="SELECT 1", expect="1")


def split(target: str) -> tuple[str, str]:
    namespace, sep, name = target.partition("/")
    if not sep or not namespace or not name:
        raise CommandError(f"give the cluster with its namespace, e.g. /dr drill cnpg "
                           f"databases/{target or 'pg-main'}")
    return namespace, name


def checks_for(inventory: Inventory, target: str, server_name: str) -> list[SqlCheck]:
    """The drill's checks of this cluster; else the verification's of its server; else
    SELECT 1."""
    drill, verify = inventory.backups.drill, inventory.backups.verify
    return (list(drill.cnpg_checks.get(target, [])) or list(verify.cnpg_checks.get(server_name, []))
            or [DEFAULT_CHECK])


def newest_backup(kube: Kube, namespace: str, name: str) -> tuple[str, str]:
    """(backupId, stoppedAt) of the source's newest completed Backup; refused without one."""
    from adapters.kubernetes import cnpg

    done = [b for b in cnpg.list_backups(kube, namespace, name) if b.phase == "completed"]
    if not done:
        raise CommandError(f"CloudNativePG cluster {namespace}/{name} has no completed backup "
                           f"to drill: run /dr backup-now cnpg {namespace}/{name} first")
    newest = max(done, key=lambda b: (b.stopped or b.started, b.name))
    return newest.backup_id or newest.name, newest.stopped


def recovery_for(kube: Kube, inventory: Inventory, target: str, namespace: str
                 ) -> RecoveryPlan:
    """What the drill will create in ``namespace``, from the source as it is now."""
    from adapters.errors import AdapterError
    from adapters.kubernetes import cnpg, cnpg_drill

    src_ns, name = split(target)
    try:
        source = cnpg_drill.read_source(kube, name, src_ns)
        server = cnpg.get_cluster(kube, name, src_ns).server_name or name
        store = inventory.backups.drill.cnpg_object_stores.get(target) \
            or cnpg_drill.plugin_store(source)
        store_obj = cnpg_drill.read_object_store(kube, store, src_ns) if store else None
        has_ca = bool(inventory.backups.cnpg_store and inventory.backups.cnpg_store.ca_file)
        return cnpg_drill.plan(source, name=CLUSTER, namespace=namespace, server_name=server,
                               object_store=store_obj, has_ca=has_ca)
    except AdapterError as exc:
        raise CommandError(f"cannot drill CloudNativePG cluster {target}: {exc}") from None


def credentials(step: StepContext) -> dict[str, bytes]:
    """What the recovery Cluster reads the store with: drbot's own read-only CNPG store key
    (``backups.cnpg_store``), its region and CA. Never logged: it only goes into the drill's
    Secret."""
    from adapters.kubernetes import cnpg_drill

    entry = step.inventory.backups.cnpg_store
    if entry is None:
        raise CommandError("the drill gives the recovery Cluster drbot's read-only store key: "
                           "add backups.cnpg_store (with credentials_file) to the inventory")
    config = step.services.store("cnpg").config
    if not (config.access_key and config.secret_key):
        raise CommandError("the drill needs a key to give the recovery Cluster: set "
                           "backups.cnpg_store.credentials_file (a read-only key)")
    data = {cnpg_drill.ACCESS_KEY: config.access_key.encode(),
            cnpg_drill.SECRET_KEY: config.secret_key.encode(),
            cnpg_drill.REGION: (config.region or entry.region).encode()}
    if entry.ca_file:
        try:
            data[cnpg_drill.CA] = Path(entry.ca_file).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read backups.cnpg_store.ca_file: {exc.strerror}") \
                from None
    return data


def room(kube: Kube, recovery: RecoveryPlan) -> None:
    """Refuse when no node can run the instance, or, on Longhorn storage, no node has room for
    a replica of the instance's volume (Longhorn's own test, adapters/kubernetes/drills.py)."""
    from adapters.kubernetes import drills, nodes

    if not [n for n in nodes.list_nodes(kube) if n.ready and not n.unschedulable]:
        raise CommandError("no node can run the recovery Cluster's instance: none is Ready "
                           "and schedulable")
    size, storage_class = recovery.storage
    if size and "longhorn" in storage_class and not drills.nodes_with_room(kube, size):
        raise CommandError(f"Longhorn lacks schedulable storage for the drill: no node has "
                           f"room for a {size / 2**30:.1f} GiB replica of the instance's volume")


def describe(kube: Kube, inventory: Inventory, target: str) -> str:
    """The plan's line; refuses (CommandError) what cannot be drilled."""
    src_ns, name = split(target)
    recovery = recovery_for(kube, inventory, target, "drbot-drill-plan")
    backup_id, _ = newest_backup(kube, src_ns, name)
    room(kube, recovery)
    checks = ", ".join(c.name for c in checks_for(inventory, target, recovery.server_name))
    return (f"recover {target} (server {recovery.server_name}, newest backup {backup_id}) from "
            f"{recovery.store} into a one-instance Cluster in a drill namespace, run its SQL "
            f"checks ({checks}), delete it")


# ---- the checks --------------------------------------------------------------------------------

def parse_time(value: str) -> datetime | None:
    """A time as psql prints one (``2026-12-05 01:02:03.45+00``), else None."""
    text = value.strip().replace(" ", "T", 1)
    if len(text) >= 3 and text[-3] in "+-" and text[-3:].lstrip("+-").isdigit():
        text += ":00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def evaluate(check: SqlCheck, code: int, stdout: str, stderr: str, now: datetime
             ) -> tuple[CheckResult, datetime | None]:
    """What one SQL check found (expected vs got), and the time it returned when it has
    ``max_age_hours`` (the newest data: the recovered point in time)."""
    from adapters.kubernetes.drills import CheckResult

    if code != 0:
        why = (stderr.strip() or stdout.strip() or "no output").splitlines()[-1][-300:]
        return CheckResult(check.name, False, f"the query failed (exit {code}): {why}"), None
    value = (stdout.strip().splitlines() or [""])[0].split("|")[0]
    if check.expect is not None and value != check.expect:
        return CheckResult(check.name, False,
                           f"expected {check.expect[:200]!r}, got {value[:200]!r}"), None
    if check.max_age_hours is None:
        return CheckResult(check.name, True, value[:200] or "no rows"), None
    when = parse_time(value)
    if when is None:
        return CheckResult(check.name, False, f"expected a time, got {value[:200]!r}"), None
    age = (now - when).total_seconds()
    text = f"newest data {when:%Y-%m-%d %H:%M:%S} UTC ({age / 3600:.1f}h before the drill)"
    if age > check.max_age_hours * 3600:
        return CheckResult(check.name, False, text + f", over {check.max_age_hours:g}h"), when
    return CheckResult(check.name, True, text), when


def run_checks(step: StepContext, namespace: str, checks: list[SqlCheck], result: DrillResult
               ) -> None:
    from adapters.kubernetes import cnpg_drill

    kube = step.services.kube
    pod = cnpg_drill.primary_pod(kube, CLUSTER, namespace)
    for check in checks:
        ran = cnpg_drill.exec_in_pod(kube, pod, namespace,
                                     cnpg_drill.psql_argv(check.database, check.query))
        found, when = evaluate(check, ran.exit_code, ran.stdout, ran.stderr, datetime.now(UTC))
        result.checks.append(found)
        if when is not None and not result.recovered_to:
            result.recovered_to = when.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the drill ---------------------------------------------------------------------------------

def wait_ready(step: StepContext, namespace: str, deadline: float) -> None:
    """Until the recovery Cluster is Ready; its phase and reason when it is not in time."""
    from adapters.errors import AdapterError
    from adapters.kubernetes import cnpg_drill
    from adapters.kubernetes._wait import wait_for

    kube = step.services.kube
    timeout = max(1.0, min(float(step.inventory.backups.drill.cnpg_ready_seconds),
                           deadline - time.time()))
    seen: list[cnpg_drill.ClusterState] = []

    def ready() -> bool | None:
        current = cnpg_drill.state(kube, CLUSTER, namespace)
        if not seen or seen[-1].phase != current.phase:
            step.progress(f"recovery Cluster {namespace}/{CLUSTER}: "
                          f"{current.phase or 'no phase yet'}", target=namespace)
        seen.append(current)
        if current.phase == cnpg_drill.PHASE_UNRECOVERABLE:
            raise AdapterError(f"the recovery Cluster is unrecoverable: {current.reason}")
        return True if current.ready else None

    def late(err: str) -> str:
        last = seen[-1] if seen else None
        where = (f"phase {last.phase!r}" + (f": {last.reason}" if last.reason else "")
                 if last else "no status")
        return (f"the recovery Cluster did not become Ready within {timeout:.0f}s ({where})"
                + (f"; last error: {err}" if err else ""))

    wait_for(ready, timeout=timeout, poll=POLL, hooks=step.hooks, timeout_message=late,
             cancel_message="drill cancelled")


def drill_cnpg(step: StepContext, target: str) -> DrillResult:
    """The drill, in the drill namespace and its guard that every kind shares (handlers/drill.py,
    imported here at call time: it imports this module)."""
    from adapters.kubernetes import cnpg_drill, drills
    from adapters.kubernetes.drills import DrillResult
    from handlers.drill import cleanup_quietly, contained

    kube, cfg = step.services.kube, step.inventory.backups.drill
    src_ns, name = split(target)
    backup_id, _stopped = newest_backup(kube, src_ns, name)
    namespace = drills.namespace_for(step.job_id)
    plan = step.intent("drill", lambda: {"namespace": namespace, "backup": backup_id})
    namespace = str(plan["namespace"])
    if step.resumed("drill"):
        step.progress(f"removing what the earlier attempt left in {namespace}", target=target)
        left = cleanup_quietly(step, kube, namespace)
        if left:
            raise CommandError(f"the earlier attempt's drill namespace remains: {left}")
    recovery = recovery_for(kube, step.inventory, target, namespace)
    started = time.time()
    deadline = started + cfg.timeout_minutes * 60
    result = DrillResult("cnpg", target, str(plan["backup"]), started)
    with contained(step, kube, namespace, result):
        room(kube, recovery)  # no room is a failed drill, kept: a recovery would fail too
        drills.create_namespace(kube, namespace, job=step.job_id, target=f"cnpg {target}",
                                deadline=deadline)
        cnpg_drill.create(kube, recovery, credentials(step))
        step.progress(f"recovering {target} (server {recovery.server_name}) from "
                      f"{recovery.store} into {namespace}/{CLUSTER}", target=target)
        wait_ready(step, namespace, deadline)
        result.restore_seconds = time.time() - started
        step.progress(f"Ready in {result.restore_seconds:.1f}s; running the SQL checks",
                      target=target)
        run_checks(step, namespace, checks_for(step.inventory, target, recovery.server_name),
                   result)
    return result


def drillable(kube: Kube) -> list[str]:
    """namespace/cluster of every CNPG cluster that has a completed backup."""
    from adapters.kubernetes import cnpg

    return sorted({f"{b.namespace}/{b.cluster}" for b in cnpg.list_backups(kube)
                   if b.phase == "completed" and b.cluster})


__all__ = ["checks_for", "describe", "drill_cnpg", "drillable", "evaluate", "split"]

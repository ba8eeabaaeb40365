"""Restore drills inside the cluster: a labelled namespace per drill, the room a drill needs, the
pod that mounts the restored volume read-only and runs a check, and removing all of it again.

Everything a drill makes carries its namespace's name: the namespace ``drbot-drill-<job>``
(label ``drbot.io/drill``, annotations naming the job, the object drilled and a deadline), and
the Longhorn volume and static PV of the restore, named as the namespace. So the sweeper finds
every piece of a drill from the label alone, also after the worker that made it was killed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.errors import AdapterError, Conflict, NotFound
from adapters.kubernetes.client import Kube
from adapters.kubernetes.longhorn._objects import NS, condition
from adapters.kubernetes.longhorn.settings import get_setting
from adapters.kubernetes.resources import LH_NODES, LH_VOLUMES

PREFIX = "drbot-drill-"
LABEL = "drbot.io/drill"
JOB = "drbot.io/drill-job"
OBJECT = "drbot.io/drill-object"
DEADLINE = "drbot.io/drill-deadline"  # unix seconds, as a string
POD = "drill-check"
CONTAINER = "check"

# Longhorn's defaults for the settings its replica scheduler reads (types/setting.go).
OVER_PROVISIONING, MINIMAL_AVAILABLE = 100, 25


def namespace_for(job_id: str) -> str:
    return f"{PREFIX}{job_id.lower()}"[:63].rstrip("-")


@dataclass(frozen=True)
class DrillNamespace:
    name: str
    job: str
    target: str
    deadline: float
    created: str
    terminating: bool

    def overdue(self, now: float) -> bool:
        return self.deadline <= now


# ---- the namespace -----------------------------------------------------------------------------

def create_namespace(kube: Kube, name: str, *, job: str, target: str, deadline: float) -> bool:
    """Create the drill namespace, labelled for the sweeper; False when it exists already (an
    earlier attempt of the same job made it)."""
    try:
        kube.call(kube.core.create_namespace, {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {LABEL: "true"},
                         "annotations": {JOB: job, OBJECT: target, DEADLINE: str(int(deadline))}}})
    except Conflict:
        return False
    return True


def _to_namespace(obj: Any) -> DrillNamespace:
    meta = obj.metadata
    notes = dict(meta.annotations or {})
    try:
        deadline = float(notes.get(DEADLINE, "0"))
    except ValueError:
        deadline = 0.0  # unreadable: overdue, so the sweeper removes it
    created = meta.creation_timestamp
    return DrillNamespace(
        name=meta.name, job=notes.get(JOB, ""), target=notes.get(OBJECT, ""), deadline=deadline,
        created=created.isoformat() if hasattr(created, "isoformat") else str(created or ""),
        terminating=bool(meta.deletion_timestamp)
        or ((obj.status.phase if obj.status else "") == "Terminating"))


def list_namespaces(kube: Kube) -> list[DrillNamespace]:
    """Every drill namespace (by label; the name's prefix is checked too, so a namespace that
    only wears the label is never taken for a drill's)."""
    found = kube.call(kube.core.list_namespace, label_selector=f"{LABEL}=true").items or []
    return sorted((_to_namespace(o) for o in found
                   if (o.metadata.labels or {}).get(LABEL) == "true"
                   and str(o.metadata.name).startswith(PREFIX)), key=lambda n: n.name)


def get_namespace(kube: Kube, name: str) -> DrillNamespace | None:
    try:
        return _to_namespace(kube.call(kube.core.read_namespace, name))
    except NotFound:
        return None


def delete_namespace(kube: Kube, name: str) -> bool:
    """Ask to delete the namespace (Kubernetes removes what is in it first); False when gone."""
    if not name.startswith(PREFIX):
        raise ValueError(f"not a drill namespace: {name}")
    try:
        kube.call(kube.core.delete_namespace, name)
    except NotFound:
        return False
    return True


def delete_restore(kube: Kube, name: str) -> list[str]:
    """Delete the static PV and the Longhorn volume a drill restored into (both named as its
    namespace); returns what was there to delete."""
    if not name.startswith(PREFIX):
        raise ValueError(f"not a drill volume: {name}")
    deleted = []
    try:
        kube.call(kube.core.delete_persistent_volume, name)
        deleted.append(f"PV {name}")
    except NotFound:
        pass
    try:
        kube.delete_object(LH_VOLUMES, name, NS)
        deleted.append(f"Longhorn volume {name}")
    except NotFound:
        pass
    return deleted


def leftovers(kube: Kube) -> list[str]:
    """Names of drill PVs and Longhorn volumes, whether or not their namespace still exists."""
    pvs = kube.call(kube.core.list_persistent_volume).items or []
    names = {p.metadata.name for p in pvs if str(p.metadata.name).startswith(PREFIX)}
    names |= {str(v["metadata"]["name"]) for v in kube.list_objects(LH_VOLUMES, NS)
              if str(v.get("metadata", {}).get("name", "")).startswith(PREFIX)}
    return sorted(names)


# ---- room ------------------------------------------------------------------------------------

def _percent(kube: Kube, name: str, default: int) -> int:
    value = get_setting(kube, name)
    return int(value) if value and value.isdigit() else default


def disk_fits(size: int, disk: dict[str, Any], status: dict[str, Any], over: int,
              minimal: int) -> bool:
    """Longhorn's own test of room for a replica of ``size`` bytes on one disk (longhorn-manager
    scheduler/replica_scheduler.go IsSchedulableToDisk): after it, more than
    storage-minimal-available-percentage of the disk stays free, and the space scheduled stays
    within (maximum - reserved) x storage-over-provisioning-percentage."""
    maximum = int(status.get("storageMaximum") or 0)
    available = int(status.get("storageAvailable") or 0)
    scheduled = int(status.get("storageScheduled") or 0)
    reserved = int(disk.get("storageReserved") or 0)
    return (maximum > 0 and available > 0 and disk.get("allowScheduling", True) is not False
            and available - size > maximum * minimal // 100
            and size + scheduled <= (maximum - reserved) * over // 100)


def nodes_with_room(kube: Kube, size: int) -> list[str]:
    """Longhorn nodes that are Ready, allow scheduling and have a disk with room for a replica
    of ``size`` bytes."""
    over = _percent(kube, "storage-over-provisioning-percentage", OVER_PROVISIONING)
    minimal = _percent(kube, "storage-minimal-available-percentage", MINIMAL_AVAILABLE)
    found = []
    for node in kube.list_objects(LH_NODES, NS):
        spec, status = node.get("spec") or {}, node.get("status") or {}
        if condition(node, "Ready").get("status") != "True" or spec.get("allowScheduling") is False:
            continue
        disks, states = spec.get("disks") or {}, status.get("diskStatus") or {}
        if any(disk_fits(size, disks[d], states.get(d) or {}, over, minimal) for d in disks):
            found.append(str(node["metadata"]["name"]))
    return sorted(found)


# ---- the check pod ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PodOutcome:
    """How the check pod ended: its container's exit code and what it printed."""

    exit_code: int
    reason: str
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def start_check(kube: Kube, namespace: str, pvc: str, *, image: str, command: list[str],
                mount_path: str, name: str = POD) -> bool:
    """Create the pod that mounts ``pvc`` read-only (the claim and the mount both say so) and
    runs ``command`` once; False when it exists already."""
    try:
        kube.call(kube.core.create_namespaced_pod, namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: "true"}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [{
                    "name": CONTAINER, "image": image, "command": command,
                    "volumeMounts": [{"name": "restored", "mountPath": mount_path,
                                      "readOnly": True}],
                    "securityContext": {"readOnlyRootFilesystem": True,
                                        "allowPrivilegeEscalation": False}}],
                "volumes": [{"name": "restored", "persistentVolumeClaim": {
                    "claimName": pvc, "readOnly": True}}]}})
    except Conflict:
        return False
    return True


def check_outcome(kube: Kube, namespace: str, name: str = POD) -> PodOutcome | None:
    """None while the pod runs; its outcome once it ended (Succeeded or Failed). An
    unschedulable pod raises, naming the scheduler's reason."""
    pod = kube.call(kube.core.read_namespaced_pod, name, namespace)
    status = pod.status
    phase = (status.phase if status else "") or ""
    if phase not in ("Succeeded", "Failed"):
        for cond in (status.conditions if status else None) or []:
            if cond.type == "PodScheduled" and cond.status == "False" \
                    and cond.reason == "Unschedulable":
                raise AdapterError(f"the check pod cannot be scheduled: {cond.message}")
        return None
    code, reason = (0 if phase == "Succeeded" else 1), phase
    for cs in (status.container_statuses if status else None) or []:
        term = cs.state.terminated if cs.state else None
        if cs.name == CONTAINER and term is not None:
            code, reason = int(term.exit_code), str(term.reason or phase)
    output = kube.call(kube.core.read_namespaced_pod_log, name, namespace, container=CONTAINER)
    return PodOutcome(code, reason, str(output or ""))


# ---- what a drill found ----------------------------------------------------------------------

@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    text: str  # what it found, or why it failed


@dataclass
class DrillResult:
    """One drill: what was restored, how long it took, what the checks found."""

    kind: str
    name: str  # the object drilled, as people know it (namespace/pvc)
    backup_id: str
    started_at: float  # unix seconds
    restore_seconds: float | None = None  # None: the restore did not finish
    duration: float = 0.0
    size: int = 0  # bytes of the restored volume
    checks: list[CheckResult] = field(default_factory=list)
    problem: str = ""
    recovered_to: str = ""  # CNPG: the newest data the recovered database holds (UTC, ISO)

    @property
    def ok(self) -> bool:
        return not self.problem and bool(self.checks) and all(c.ok for c in self.checks)

    def summary(self) -> str:
        head = f"{self.kind} {self.name}: backup {self.backup_id or '-'}"
        if self.restore_seconds is not None and self.kind == "cnpg":
            head += (f" recovered in {self.restore_seconds:.1f}s, to "
                     + (self.recovered_to or "a point no check measured"))
        elif self.restore_seconds is not None:
            head += f" restored in {self.restore_seconds:.1f}s ({self.size / 2**30:.1f} GiB)"
        lines = [head + (": drill passed" if self.ok else ": drill FAILED")]
        lines += [f"  {'✓' if c.ok else '✗'} {c.name}: {c.text}" for c in self.checks]
        if self.problem:
            lines.append(f"  ✗ {self.problem}")
        return "\n".join(lines)

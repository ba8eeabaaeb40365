"""Which Longhorn volumes a recurring *backup* job covers.

A RecurringJob applies to a volume labelled ``recurring-job.longhorn.io/<job>: enabled``, or
``recurring-job-group.longhorn.io/<group>: enabled`` for a group in the job's ``spec.groups``
(longhorn-manager ``types/types.go``); a volume with no such label at all gets the ``default``
group (Longhorn docs, "Recurring Snapshots and Backups": the default jobs apply to a volume that
has no recurring job). Only the ``backup`` and ``backup-force-create`` tasks make backups.
"""

from __future__ import annotations

from adapters.kubernetes.client import Kube
from adapters.kubernetes.resources import LH_RECURRINGJOBS, LH_VOLUMES

JOB_LABEL = "recurring-job.longhorn.io/"
GROUP_LABEL = "recurring-job-group.longhorn.io/"
BACKUP_TASKS = ("backup", "backup-force-create")
DEFAULT_GROUP = "default"


def backup_jobs_by_volume(kube: Kube) -> dict[str, list[str]]:
    """Volume name -> the recurring backup jobs that apply to it ([] for none)."""
    jobs = [j for j in kube.list_objects(LH_RECURRINGJOBS)
            if (j.get("spec") or {}).get("task") in BACKUP_TASKS]
    out: dict[str, list[str]] = {}
    for volume in kube.list_objects(LH_VOLUMES):
        meta = volume.get("metadata") or {}
        labels = {k: v for k, v in (meta.get("labels") or {}).items()
                  if (k.startswith(JOB_LABEL) or k.startswith(GROUP_LABEL)) and v == "enabled"}
        named = {k[len(JOB_LABEL):] for k in labels if k.startswith(JOB_LABEL)}
        groups = {k[len(GROUP_LABEL):] for k in labels if k.startswith(GROUP_LABEL)}
        if not labels:
            groups = {DEFAULT_GROUP}
        out[str(meta.get("name", ""))] = sorted(
            str((j.get("metadata") or {}).get("name", "")) for j in jobs
            if (j.get("metadata") or {}).get("name") in named
            or groups & set((j.get("spec") or {}).get("groups") or []))
    return out

"""/dr restore when Longhorn's backup target sync deletes a Backup whose store entry is gone
(longhorn-manager backup_volume_controller.go): the approved backup is never swapped for
another, and a new request restores the newest backup the store still holds."""

from __future__ import annotations

from typing import Any

import kubernetes

from lab import Lab, world
from lab.store import longhorn_volume_dir
from tests.bot.harness import Harness
from tests.support import sync_longhorn_target

RUN = 90.0
GITEA = next(v for v in world.VOLUMES if v.pvc == "gitea-data")


def s3_client(lab: Lab) -> Any:
    import boto3

    assert lab.paths is not None
    creds = dict(line.split("=", 1) for line in lab.paths.s3_credentials.read_text().split())
    return boto3.client("s3", endpoint_url=lab.s3_url, region_name=world.REGION,
                        aws_access_key_id=creds["access_key"],
                        aws_secret_access_key=creds["secret_key"])


def remove_from_store_and_sync(lab: Lab, backup: str) -> None:
    """The backup's cfg is deleted from the store (retention elsewhere, a person); Longhorn's
    next sync (requested here) deletes its Backup object."""
    s3_client(lab).delete_object(Bucket=world.BUCKETS["longhorn"],
                                 Key=f"{longhorn_volume_dir(GITEA.name)}/backups/"
                                     f"backup_{backup}.cfg")
    api = kubernetes.config.new_client_from_config(str(lab.kubeconfig))
    sync_longhorn_target(kubernetes.client.CustomObjectsApi(api), RUN)
    assert lab.world.kube_object("longhorn.io/v1beta2", "backups", world.LONGHORN_NS,
                                 backup) is None, f"the sync kept Backup {backup}"


def test_a_backup_gone_from_the_store_after_approval_is_not_swapped_unasked(
        drbot_lab: Harness, lab: Lab) -> None:
    """The approval bound the plan to the latest backup; once the sync deleted it, the worker's
    plan names another backup, so it asks for approval again instead of restoring that one."""
    ages = sorted(GITEA.backup_age_days)
    latest, previous = (world.longhorn_backup_name(GITEA.name, a) for a in ages[:2])
    reply = drbot_lab.say("/dr restore apps/gitea-data", who="alice")
    assert reply.ok and reply.job_id, reply.text
    job_id = reply.job_id
    drbot_lab.wait_status(job_id, "awaiting_approval", timeout=RUN)
    assert latest in drbot_lab.wait_reply(job_id, "Plan", timeout=RUN)
    remove_from_store_and_sync(lab, latest)
    assert drbot_lab.say(f"/dr approve {job_id}", who="bob").ok
    drbot_lab.wait_reply(job_id, "the plan changed since it was approved: fresh approval needed",
                         timeout=RUN)
    plans = [r for r in drbot_lab.frontend.replies(job_id) if r.startswith("Plan")]
    assert previous in plans[-1] and latest not in plans[-1]
    assert drbot_lab.job(job_id).status == "awaiting_approval"
    assert not restored_from(lab, latest)

    assert drbot_lab.say(f"/dr approve {job_id}", who="bob").ok
    job = drbot_lab.wait_status(job_id, "succeeded", "failed", timeout=RUN)
    assert job.status == "succeeded", job.error
    assert restored_from(lab, previous) and not restored_from(lab, latest)


def restored_from(lab: Lab, backup: str) -> list[str]:
    return [v["metadata"]["name"] for v in lab.world.kube_objects("longhorn.io/v1beta2", "volumes")
            if f"?backup={backup}&" in str((v.get("spec") or {}).get("fromBackup"))]

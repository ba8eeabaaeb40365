"""backup-now, of a Longhorn volume and of a CloudNativePG cluster, with the worker SIGKILLed right
after each externally visible effect it has on the Kubernetes API (the Snapshot and the Backup it
creates; the CNPG Backup), then retried on a new worker. After the retry: exactly one backup of
the target was taken by the job (the retry adopts what the dead attempt created, never a
second one), it completed and is in the bucket in its system's layout, no lock is left, and the
thread says which backup the whole job took."""

from __future__ import annotations

from typing import Any

import pytest

from adapters import backupstore
from adapters.s3 import ObjectStore
from lab import Lab, bucket_store, world
from lab.world import CNPG_NS, LONGHORN_NS
from tests.bot.harness import Harness
from tests.chaos.effects import Effect, killed_then_retried, recording
from tests.chaos.test_rebuild_node import held_locks

LH = f"/apis/longhorn.io/v1beta2/namespaces/{LONGHORN_NS}"
CNPG = f"/apis/postgresql.cnpg.io/v1/namespaces/{CNPG_NS}"
VOLUME = next(v for v in world.VOLUMES if (v.namespace, v.pvc) == ("apps", "web-data"))
CLUSTER = "pg-main"  # its WAL archiving works (pg-auth's fails: its backups wait for it)

LONGHORN = [
    Effect("Snapshot created", "POST", f"^{LH}/snapshots$"),
    pytest.param(Effect("Backup created", "POST", f"^{LH}/backups$"), marks=pytest.mark.fast),
]
CNPG_EFFECTS = [Effect("CNPG Backup created", "POST", f"^{CNPG}/backups$")]


def items(lab: Lab, group: str, version: str, namespace: str, plural: str
          ) -> list[dict[str, Any]]:
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(str(lab.kubeconfig)))
    return api.list_namespaced_custom_object(group, version, namespace, plural)["items"]


def bucket(lab: Lab, kind: str) -> ObjectStore:
    """The lab's bucket of ``kind`` (longhorn, cnpg), read with the lab's key."""
    creds = dict(line.split("=", 1) for line in
                 (lab.workdir / "secrets" / "s3-credentials").read_text().split())
    return bucket_store(lab.s3_url, creds["secret_key"], world.BUCKETS[kind])


def final_reply(drbot: Harness, job_id: str) -> str:
    job = drbot.job(job_id)
    assert job.status == "succeeded", job.error
    assert held_locks(drbot) == []
    drbot.wait_settled(job_id)
    final = drbot.frontend.replies(job_id)[-1]
    assert "(in 2 attempts)" in final, final
    return final


@pytest.mark.parametrize("effect", LONGHORN, ids=str)
def test_longhorn_backup_now_killed_after_an_effect_then_retried(
        drbot_lab: Harness, lab: Lab, effect: Effect) -> None:
    seeded = {b.name for b in backupstore.longhorn_backups(bucket(lab, "longhorn"), "",
                                                           VOLUME.name)}
    job_id, held = killed_then_retried(drbot_lab, lab, effect, "/dr backup-now longhorn "
                                       f"{VOLUME.namespace}/{VOLUME.pvc}", who="carol")
    with recording("backup-now longhorn", effect, held):
        final = final_reply(drbot_lab, job_id)
        mine = [b for b in items(lab, "longhorn.io", "v1beta2", LONGHORN_NS, "backups")
                if b["metadata"]["name"].startswith(f"drbot-{VOLUME.name}")]
        assert len(mine) == 1, [b["metadata"]["name"] for b in mine]  # never a second backup
        name = mine[0]["metadata"]["name"]
        assert mine[0]["status"]["state"] == "Completed"
        snaps = [s["metadata"]["name"] for s in
                 items(lab, "longhorn.io", "v1beta2", LONGHORN_NS, "snapshots")
                 if s["spec"].get("volume") == VOLUME.name]
        assert snaps == [name]  # one snapshot, the backup's
        store = bucket(lab, "longhorn")
        stored = {b.name for b in backupstore.longhorn_backups(store, "", VOLUME.name)}
        assert stored - seeded == {name}
        assert backupstore.longhorn_volume(store, "", VOLUME.name).last_backup_name == name
        assert f"backup {name} completed" in final, final


@pytest.mark.parametrize("effect", CNPG_EFFECTS, ids=str)
def test_cnpg_backup_now_killed_after_an_effect_then_retried(
        drbot_lab: Harness, lab: Lab, effect: Effect) -> None:
    seeded = {b.backup_id for b in backupstore.barman_backups(bucket(lab, "cnpg"), "", CLUSTER)}
    job_id, held = killed_then_retried(drbot_lab, lab, effect,
                                       f"/dr backup-now cnpg {CNPG_NS}/{CLUSTER}", who="carol")
    with recording("backup-now cnpg", effect, held):
        final = final_reply(drbot_lab, job_id)
        mine = [b for b in items(lab, "postgresql.cnpg.io", "v1", CNPG_NS, "backups")
                if b["spec"]["cluster"]["name"] == CLUSTER
                and b["metadata"]["name"].startswith(f"{CLUSTER}-drbot-")]
        assert len(mine) == 1, [b["metadata"]["name"] for b in mine]  # never a second backup
        status = mine[0]["status"]
        assert status["phase"] == "completed", status
        stored = {b.backup_id: b for b in backupstore.barman_backups(bucket(lab, "cnpg"), "",
                                                                     CLUSTER)}
        assert set(stored) - seeded == {status["backupId"]}
        assert stored[status["backupId"]].status == "DONE"
        assert f"backup {mine[0]['metadata']['name']} completed" in final, final

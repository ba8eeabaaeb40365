"""etcd-sync with the worker SIGKILLed right after each externally visible effect it has on the
etcd store (S3: an upload, the prune), then retried on a new worker. After the retry the store
holds exactly the snapshots within the retention, every server's, and none of the seeded old
copies; no lock is left; and the thread counts what the whole job did: the uploads of the
killed attempt still count as uploaded (not as "already there"), the prune as pruned."""

from __future__ import annotations

import pytest

from lab import Lab, world
from tests.bot.harness import Harness
from tests.chaos.effects import Effect, kill_during, recording, retry_on_a_new_worker
from tests.chaos.test_rebuild_node import held_locks
from tests.e2e.test_etcd_sync import stored

SNAPSHOT = f"/{world.ETCD_FOLDER}/etcd-snapshot-"
EFFECTS = [
    Effect("first snapshot uploaded", "PUT", SNAPSHOT, api="s3"),
    Effect("sixth snapshot uploaded", "PUT", SNAPSHOT, api="s3", nth=6),
    Effect("last snapshot uploaded", "PUT", SNAPSHOT, api="s3", nth=12),
    Effect("old snapshots deleted", "POST", "^/", api="s3"),  # DeleteObjects
]


@pytest.mark.parametrize("effect", EFFECTS, ids=str)
def test_etcd_sync_killed_after_an_effect_then_retried(drbot_lab: Harness, lab: Lab,
                                                      effect: Effect) -> None:
    before = stored(lab)

    def requested() -> str:
        job_id = drbot_lab.say("/dr etcd-sync", who="carol").job_id
        assert job_id
        return job_id
    job_id, held = kill_during(drbot_lab, lab, effect, requested)
    retry_on_a_new_worker(drbot_lab, job_id)
    with recording("etcd-sync", effect, held):
        job = drbot_lab.job(job_id)
        assert job.status == "succeeded", job.error
        after = stored(lab)
        assert len(after) == 12 and not set(before) & set(after), sorted(after)
        assert {k.rsplit("-", 1)[0].removeprefix(f"{world.ETCD_FOLDER}/etcd-snapshot-")
                for k in after} == {"k3s-server-1", "k3s-server-2", "k3s-server-3"}
        assert held_locks(drbot_lab) == []
        drbot_lab.wait_settled(job_id)
        final = drbot_lab.frontend.replies(job_id)[-1]
        assert "uploaded 12, already there 0" in final and "pruned 2" in final, final
        assert "(in 2 attempts)" in final
        assert lab.paths is not None
        assert list((lab.paths.ansible / "artifacts").glob("drbot-*")) == []

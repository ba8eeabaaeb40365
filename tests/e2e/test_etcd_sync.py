"""/dr etcd-sync against the simulated homelab: fetch, upload the missing, prune; idempotent."""

from __future__ import annotations

import boto3

from lab import Lab, world
from tests.bot.harness import Harness


def stored(lab: Lab) -> dict[str, int]:
    creds = dict(line.split("=", 1) for line in
                 (lab.workdir / "secrets" / "s3-credentials").read_text().split())
    client = boto3.client("s3", endpoint_url=lab.s3_url, region_name=world.REGION,
                          aws_access_key_id=creds["access_key"],
                          aws_secret_access_key=creds["secret_key"])
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=world.BUCKETS["etcd"], Prefix=f"{world.ETCD_FOLDER}/", Delimiter="/")
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def run(drbot: Harness, text: str, status: str = "succeeded") -> str:
    job_id = drbot.say(text, who="carol").job_id
    assert job_id
    drbot.wait_status(job_id, status, timeout=90)
    drbot.wait_settled(job_id, timeout=30)
    return drbot.frontend.replies(job_id)[-1]


def test_etcd_sync_uploads_the_missing_prunes_and_is_idempotent(drbot_lab: Harness,
                                                                lab: Lab) -> None:
    before = stored(lab)
    assert run(drbot_lab, "/dr etcd-sync --dry-run", "planned").startswith("dry run")
    assert stored(lab) == before

    first = run(drbot_lab, "/dr etcd-sync")
    after = stored(lab)
    # 3 servers x 5 local snapshots; the oldest of each is past the 2-day retention
    assert "fetched 15" in first and "uploaded 12" in first and "older than the retention 3" in first
    assert "pruned 2" in first  # the seeded 3- and 4-day-old copies of k3s-server-1
    assert len(after) == 12 and not set(before) & set(after)
    assert {k.rsplit("-", 1)[0].removeprefix(f"{world.ETCD_FOLDER}/etcd-snapshot-")
            for k in after} == {"k3s-server-1", "k3s-server-2", "k3s-server-3"}
    assert "newest" in first and "h old" in first

    second = run(drbot_lab, "/dr etcd-sync")
    assert "uploaded 0, already there 12" in second and "pruned 0" in second
    assert stored(lab) == after
    # The fetched copies went with the jobs that fetched them.
    assert lab.paths is not None
    assert list((lab.paths.ansible / "artifacts").glob("drbot-*")) == []

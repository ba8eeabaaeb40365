"""/dr status against the simulated homelab: the one-screen overview, running jobs included."""

from __future__ import annotations

from tests.bot.harness import Harness


def test_status_overview_names_what_needs_attention(drbot_lab: Harness) -> None:
    waiting = drbot_lab.say("/dr restore apps/gitea-data", who="alice").job_id
    assert waiting
    drbot_lab.wait_status(waiting, "awaiting_approval", timeout=60)
    job_id = drbot_lab.say("/dr status", who="carol").job_id
    drbot_lab.wait_status(job_id, "succeeded", timeout=60)
    text = drbot_lab.wait_reply(job_id, "Nodes:", timeout=20)
    for node in ("k3s-server-1", "k3s-server-3", "k3s-agent-2"):
        assert node in text
    assert "flux-system/flux-system" in text
    assert "Kustomizations: 3 Ready, 0 not Ready, 1 suspended" in text
    assert "✗ monitoring/grafana" in text and "context deadline exceeded" in text
    assert "6 volumes: 4 healthy, 1 degraded, 1 detached" in text
    degraded = next(line for line in text.splitlines() if "✗ pvc-" in line)
    assert "monitoring/grafana-data" in degraded and "2/3 healthy replicas" in degraded
    assert "databases/pg-auth" in text and "ARCHIVING FAILING" in text
    assert "barman-cloud-wal-archive" in text
    jobs = text.split("drbot jobs in progress:")[1]
    assert f"{waiting} /dr restore (alice) awaiting_approval" in jobs


def test_status_lists_the_names_typos_are_checked_against(drbot_lab: Harness) -> None:
    """What status read is what a later command's did-you-mean compares with (no credentials
    in the bot): the CNPG clusters, PVCs and Kustomizations as namespace/name."""
    from bot.chat.complete import SEEN

    job_id = drbot_lab.say("/dr status", who="carol").job_id
    assert job_id
    drbot_lab.wait_status(job_id, "succeeded", timeout=60)
    seen = {source: {m.decode() for m in drbot_lab.redis.smembers(SEEN + source)}
            for source in ("cnpg", "pvcs", "kustomizations")}
    assert "databases/pg-auth" in seen["cnpg"] and all("/" in n for n in seen["cnpg"])
    assert "apps/web-data" in seen["pvcs"] and "flux-system/apps" in seen["kustomizations"]
    reply = drbot_lab.say("/dr backup-now cnpg pg-auht", who="alice")
    assert not reply.ok and reply.job_id is None
    assert reply.text.startswith("no CloudNativePG cluster pg-auht; did you mean "
                                 "databases/pg-auth?")

"""Kill drbot's worker right after one externally visible effect of a runbook, retry on a new
worker, and report what happened (for the result table of `make chaos`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from bot.records import signals
from lab import Lab
from tests.bot.harness import Harness
from tests.support import wait_until

RUN = 180.0  # a whole rebuild on a loaded two-core machine; each wait ends on its condition


@dataclass(frozen=True)
class Effect:
    """A request to one of the lab's APIs (``kube``, ``pve`` or ``s3``), held right after it
    was applied."""

    name: str
    method: str
    path: str  # a regex over the request path
    api: str = "kube"
    nth: int = 1  # the nth matching request (a runbook may make the same request twice)
    # The job's own subprocesses (Terraform, a playbook) die with the worker, as when the whole
    # machine dies: a Terraform create then lands in Proxmox but never in Terraform's state.
    machine: bool = False

    def __str__(self) -> str:
        return self.name


def kill_after(drbot: Harness, lab: Lab, job_id: str, effect: Effect, approve: str) -> str:
    """Arm the hold, let the approval start the job, SIGKILL the worker when the job reaches the
    held request, release it and wait until drbot has declared the job lost. Returns the request
    that was held."""
    def approved() -> str:
        assert drbot.say(approve, who="bob").ok
        return job_id
    return kill_during(drbot, lab, effect, approved)[1]


def kill_during(drbot: Harness, lab: Lab, effect: Effect,
                start: Callable[[], str]) -> tuple[str, str]:
    """As kill_after, for a job ``start()`` sets going (and names): (job id, request held)."""
    arm = {"kube": lab.world.hold_kube, "pve": lab.world.hold_pve,
           "s3": lab.world.hold_s3}[effect.api]
    hold = arm(effect.method, effect.path, nth=effect.nth)
    try:
        job_id = start()
        lab.world.wait_for(hold.reached.is_set, RUN, f"the job to reach {effect}")
        drbot.kill_workers()
        if effect.machine:
            kill_recorded(drbot, job_id)
    finally:
        hold.release()
    drbot.wait_status(job_id, "lost", timeout=60)
    return job_id, hold.request


def killed_then_retried(drbot: Harness, lab: Lab, effect: Effect, text: str,
                        who: str = "alice") -> tuple[str, str]:
    """``who`` asks for ``text`` (a job that needs no approval), the worker is killed at
    ``effect``, and the job is retried on a new worker: (job id, request held)."""
    def requested() -> str:
        reply = drbot.say(text, who=who)
        assert reply.ok and reply.job_id, reply.text
        return reply.job_id
    job_id, held = kill_during(drbot, lab, effect, requested)
    retry_on_a_new_worker(drbot, job_id)
    return job_id, held


def kill_recorded(drbot: Harness, job_id: str) -> None:
    """SIGKILL the job's recorded subprocesses still alive on this host (bot/records/signals.py)."""
    for entry in signals.living_subprocesses(drbot.redis, job_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(entry.split()[1]), signal.SIGKILL)
    wait_until(lambda: not signals.living_subprocesses(drbot.redis, job_id), 30,
               "the job's subprocesses to die")


def retry_on_a_new_worker(drbot: Harness, job_id: str) -> None:
    drbot.start_worker()
    reply = drbot.say(f"/dr retry {job_id}", who="alice")
    assert reply.ok, reply.text
    if drbot.job(job_id).status == "awaiting_approval":  # the policy wants the approval again
        assert drbot.say(f"/dr approve {job_id}", who="bob").ok
    drbot.wait_status(job_id, "succeeded", "failed", "cancelled", "lost", timeout=RUN)


def stopped_at_the_stale_terraform_lock(drbot: Harness, job_id: str) -> str:
    """The retry after a machine death inside Terraform: the dead run's state lock is still held
    (the lab's Terraform keeps it as a remote backend does), and drbot cannot tell a dead holder
    from a live one on another machine, so the retry stops and says whose lock it is and how to
    release it (DESIGN: force-unlock is a separate, approved command). Returns the error."""
    job = drbot.job(job_id)
    assert job.status == "failed", (job.status, job.error)
    error = job.error or ""
    assert "is locked by" in error and "terraform force-unlock" in error, error
    drbot.wait_settled(job_id)
    assert "terraform force-unlock" in drbot.frontend.replies(job_id)[-1]
    return error


RECORDED: list[str] = []  # the rows this test process wrote (conftest adds any a failure skipped)


@contextlib.contextmanager
def recording(case: str, effect: Effect, held: str) -> Iterator[None]:
    """Check a case's invariants inside; its row of the chaos table says whether they held."""
    try:
        yield
    except AssertionError as exc:
        record(case, effect, "FAIL", f"{held}: {str(exc)[:200]}")
        raise
    record(case, effect, "ok", held)


def record(case: str, effect: Effect, outcome: str, detail: str = "") -> None:
    """One row of the chaos table, when `make chaos` asked for it."""
    RECORDED.append(case)
    path = os.environ.get("DRBOT_CHAOS_RESULTS")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"case": case, **asdict(effect), "outcome": outcome,
                                  "detail": detail}) + "\n")

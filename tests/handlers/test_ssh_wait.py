"""The SSH wait's pace: it tries again soon after Terraform created the VM, then at a share of the
time waited (adapters/pacing.py), up to SSH_POLL, and its last pause ends at the deadline (a fake
clock and a fake endpoint: no real time passes and nothing listens)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from adapters import pacing
from adapters.errors import Cancelled, TimedOut
from handlers import iac
from tests.support import FakeClock

ENDPOINT = iac.SshEndpoint("k3s-server-3", "192.0.2.13", 22)
KEYS = ["192.0.2.13 ssh-ed25519 AAAAC3Nza"]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock(500.0).install(monkeypatch, iac)


def answers_after(monkeypatch: pytest.MonkeyPatch, tries: int) -> list[str]:
    """The endpoint refuses ``tries`` times, then answers with KEYS; returns the tries' log."""
    seen: list[str] = []

    def banner(endpoint: iac.SshEndpoint, timeout: float = 2.0) -> bool:
        seen.append("banner")
        return len(seen) > tries

    monkeypatch.setattr(iac, "ssh_banner", banner)
    monkeypatch.setattr(iac, "scan_host_keys", lambda endpoint: list(KEYS))
    return seen


def step(cancelled: bool = False) -> SimpleNamespace:
    return SimpleNamespace(cancelled=lambda: cancelled)


def host_keys(clock: FakeClock, timeout: float = 900.0, cancelled: bool = False) -> list[str]:
    return iac._host_keys(step(cancelled), ENDPOINT, clock.now + timeout, timeout,  # type: ignore[arg-type]
                          threading.Event())


def test_the_pause_is_a_share_of_the_time_waited_between_the_floor_and_the_interval() -> None:
    assert pacing.pause_after(0.0, 0.5) == pacing.FIRST_PAUSE
    assert pacing.pause_after(1.0, 0.5) == pacing.FIRST_PAUSE
    assert pacing.pause_after(4.0, 0.5) == pytest.approx(pacing.SHARE * 4.0)
    assert pacing.pause_after(60.0, 0.5) == 0.5
    assert pacing.pause_after(0.0, 0.05) == 0.05  # a shorter interval than the floor wins


def test_an_endpoint_that_answers_at_once_is_not_waited_for(
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    answers_after(monkeypatch, 0)
    assert host_keys(clock) == KEYS
    assert clock.sleeps == []


def test_the_ssh_wait_tries_again_soon_then_less_often_up_to_ssh_poll(
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    tries = answers_after(monkeypatch, 40)
    assert host_keys(clock) == KEYS
    assert len(tries) == 41
    assert clock.sleeps[:20] == [pacing.FIRST_PAUSE] * 20
    waited = 0.0
    for pause in clock.sleeps:
        assert pause == pytest.approx(min(iac.SSH_POLL, max(pacing.FIRST_PAUSE,
                                                            pacing.SHARE * waited)), abs=1e-5)
        waited += pause
    assert max(clock.sleeps) == pytest.approx(pacing.SHARE * (waited - clock.sleeps[-1]), abs=1e-5)


def test_the_last_pause_ends_at_the_deadline_then_it_times_out(
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    answers_after(monkeypatch, 10**6)
    with pytest.raises(TimedOut, match="did not answer SSH on 192.0.2.13:22 within 1s"):
        host_keys(clock, timeout=1.0)
    assert sum(clock.sleeps) == pytest.approx(1.0)
    assert clock.sleeps == [0.1] * 10


def test_a_cancelled_job_stops_waiting(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    tries = answers_after(monkeypatch, 10**6)
    with pytest.raises(Cancelled, match="stopped waiting for SSH on k3s-server-3"):
        host_keys(clock, cancelled=True)
    assert tries == [] and clock.sleeps == []

"""The shared wait: its pauses are a share of the time waited (pacing.SHARE), from the first pause
up to the poll interval, never past the deadline, so a condition is seen at most that share late;
cancellation and timeouts still end it (on a fake clock: no real time passes)."""

from __future__ import annotations

import pytest

from adapters import pacing
from adapters.errors import Cancelled, TimedOut
from adapters.kubernetes import _wait
from adapters.progress import Hooks
from tests.support import FakeClock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock(1000.0).install(monkeypatch, _wait)


def wait(check: object, timeout: float = 60.0, poll: float = 1.0,
         hooks: Hooks | None = None) -> object:
    return _wait.wait_for(check, timeout=timeout, poll=poll, hooks=hooks or Hooks(),  # type: ignore[arg-type]
                          timeout_message=lambda err: f"timed out ({err})",
                          cancel_message="cancelled")


def holds_from(clock: FakeClock, seconds: float) -> object:
    """A check that holds once ``seconds`` have passed on the clock."""
    start = clock.now
    return lambda: "ready" if clock.now - start >= seconds else None


def test_pauses_start_at_the_first_pause_then_grow_with_the_time_waited(clock: FakeClock) -> None:
    start = clock.now
    assert wait(holds_from(clock, 4.0), poll=1.0) == "ready"
    waited, expected = 0.0, []
    for pause in clock.sleeps:
        expected.append(pytest.approx(max(pacing.FIRST_PAUSE, pacing.SHARE * waited), abs=1e-5))
        waited += pause
    assert clock.sleeps == expected
    assert clock.sleeps[:20] == [pacing.FIRST_PAUSE] * 20  # the floor, for the first 2 s
    assert clock.sleeps[-1] > pacing.FIRST_PAUSE  # then longer
    seen = clock.now - start
    assert 0 <= seen - 4.0 <= pacing.SHARE * seen  # late by at most that share of the wait


def test_a_long_wait_pauses_no_longer_than_the_poll_interval(clock: FakeClock) -> None:
    start = clock.now
    wait(holds_from(clock, 40.0), poll=1.0)
    assert max(clock.sleeps) <= 0.5  # slept in slices, so a cancellation is seen
    assert clock.now - start <= 41.0
    assert clock.sleeps[-4:] == [0.5, 0.5, 0.5, 0.5]  # a full interval: two slices


def test_a_condition_true_at_once_never_sleeps(clock: FakeClock) -> None:
    assert wait(lambda: 1) == 1
    assert clock.sleeps == []


def test_a_short_poll_interval_is_never_exceeded(clock: FakeClock) -> None:
    calls = iter([None] * 3 + [True])
    wait(lambda: next(calls), poll=0.05)
    assert clock.sleeps == [0.05, 0.05, 0.05]


def test_the_last_pause_ends_at_the_deadline(clock: FakeClock) -> None:
    with pytest.raises(TimedOut, match="timed out"):
        wait(lambda: None, timeout=0.25)
    assert sum(clock.sleeps) == pytest.approx(0.25)
    assert clock.sleeps == [0.1, 0.1, 0.05]


def test_cancellation_ends_the_wait(clock: FakeClock) -> None:
    asked = iter([False, False, True])
    with pytest.raises(Cancelled):
        wait(lambda: None, hooks=Hooks(cancelled=lambda: next(asked, True)))

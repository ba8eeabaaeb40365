"""The shared wait: its pauses start short and double up to the poll interval, never past the
deadline; cancellation and timeouts still end it (on a fake clock: no real time passes)."""

from __future__ import annotations

import pytest

from adapters.errors import Cancelled, TimedOut
from adapters.kubernetes import _wait
from adapters.progress import Hooks


class Clock:
    """time.monotonic and time.sleep for the module: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(_wait.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(_wait.time, "sleep", fake.sleep)
    return fake


def wait(check: object, timeout: float = 60.0, poll: float = 1.0,
         hooks: Hooks | None = None) -> object:
    return _wait.wait_for(check, timeout=timeout, poll=poll, hooks=hooks or Hooks(),  # type: ignore[arg-type]
                          timeout_message=lambda err: f"timed out ({err})",
                          cancel_message="cancelled")


def test_pauses_double_from_the_first_up_to_the_poll_interval(clock: Clock) -> None:
    calls = iter([None] * 7 + ["ready"])
    assert wait(lambda: next(calls)) == "ready"
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.5, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    # 0.1, 0.2, 0.4, 0.8 (in slices of 0.5), then 1.0 each (two slices)


def test_a_condition_true_at_once_never_sleeps(clock: Clock) -> None:
    assert wait(lambda: 1) == 1
    assert clock.sleeps == []


def test_a_short_poll_interval_is_never_exceeded(clock: Clock) -> None:
    calls = iter([None] * 3 + [True])
    wait(lambda: next(calls), poll=0.05)
    assert clock.sleeps == [0.05, 0.05, 0.05]


def test_the_last_pause_ends_at_the_deadline(clock: Clock) -> None:
    with pytest.raises(TimedOut, match="timed out"):
        wait(lambda: None, timeout=0.5)
    assert sum(clock.sleeps) == pytest.approx(0.5)
    assert clock.sleeps == [0.1, 0.2, 0.2]


def test_cancellation_ends_the_wait(clock: Clock) -> None:
    asked = iter([False, False, True])
    with pytest.raises(Cancelled):
        wait(lambda: None, hooks=Hooks(cancelled=lambda: next(asked, True)))

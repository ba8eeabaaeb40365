"""The doctor's alerts: the backup watch's state machine, applied to doctor lines.

    green --red--> alert opened (one post) --still red, every reminder period--> reminder
          <--green again-- recovered (in the alert's thread, with how long it was red)

Only a change posts: the daily run says nothing while nothing changes. A line that is absent
from a run (its check could not get that far: no privileges are read with a bad token) keeps its
state; only the same line green again closes the alert. The events go to the watch's alert
stream, so the bot delivers them to the `alerts:` channels like the backup alerts; state and
events are written in one MULTI/EXEC, as the watch does.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from bot.doctor.result import Line, Status
from bot.records.signing import Signer
from bot.watch.alert_states import EVENTS, STREAM_LENGTH, AlertEvent, signer_of, utc
from bot.watch.evaluate import span

STATE = "drbot:doctor:state"  # hash: line key -> JSON state of a red line
OPENED = "red"  # the event type that opens an alert thread (bot.watch.notify.OPENERS)


def opening(line: Line) -> str:
    return (f"✗ drbot doctor: {line.system.value} {line.subject}: {line.detail}"
            + (f"\n  fix: {line.fix}" if line.fix else "")
            + "\n  (a runbook that needs this would fail now; `/dr doctor` checks again)")


def still(line: Line, since: float, now: float) -> str:
    return (f"still red after {span(now - since)}: {line.system.value} {line.subject}: "
            f"{line.detail}" + (f"\n  fix: {line.fix}" if line.fix else ""))


def recovered(line: Line, since: float, now: float) -> str:
    return (f"✓ drbot doctor: {line.system.value} {line.subject} is green again after "
            f"{span(now - since)} (red since {utc(since)}).")


def transition(line: Line, state: dict[str, Any] | None, now: float, reminder_s: float
               ) -> tuple[AlertEvent | None, dict[str, Any] | None, bool]:
    """(event, new state, delete the state?) for one line."""
    if line.status is Status.FAIL:
        if state is None:
            alert = f"{line.key}@{int(now)}"
            return (AlertEvent(alert, OPENED, opening(line)),
                    {"since": now, "last_post": now, "alert": alert}, False)
        if now - float(state["last_post"]) >= reminder_s:
            return (AlertEvent(state["alert"], "reminder", still(line, float(state["since"]), now)),
                    {**state, "last_post": now}, False)
        return None, None, False
    if line.status is Status.OK and state is not None:
        return AlertEvent(state["alert"], "recovered",
                     recovered(line, float(state["since"]), now)), None, True
    return None, None, False


def record(client: redis.Redis, lines: list[Line], now: float, reminder_hours: float,
           signer: Signer | None) -> list[AlertEvent]:
    """Apply one doctor run's lines; returns the alert events written (signed, as the watch's)."""
    signer = signer_of(signer)
    states = {k.decode(): json.loads(v) for k, v in client.hgetall(STATE).items()}
    events: list[AlertEvent] = []
    with client.pipeline(transaction=True) as pipe:
        for line in lines:
            event, state, drop = transition(line, states.get(line.key), now,
                                            reminder_hours * 3600)
            if drop:
                pipe.hdel(STATE, line.key)
            elif state is not None:
                pipe.hset(STATE, line.key, json.dumps(state))
            if event is not None:
                events.append(event)
                pipe.xadd(EVENTS, event.sealed(signer), maxlen=STREAM_LENGTH,  # type: ignore[arg-type]
                          approximate=True)
        pipe.execute()
    return events

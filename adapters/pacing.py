"""How often a wait looks again: a pause in proportion to how long it has waited so far.

A wait answers at most one pause after its condition holds, so that pause is what it adds to a
recovery. Pausing a fixed share of the time already waited keeps that addition under SHARE of the
wait's own length, whatever the length: a node Ready after 3 s is seen within 0.15 s, a replica
rebuilt after 20 minutes within the wait's interval. The floor keeps the first reads from
hammering the API; the interval (each wait's own) caps the pause for long waits, so a cancellation
or a timeout is still seen in time. Doubling pauses (the earlier rule) let the lag grow as large
as the time already waited, until the interval.
"""

from __future__ import annotations

FIRST_PAUSE = 0.1  # the shortest pause: a few reads a second at most
SHARE = 0.05  # a wait's lag after its condition holds: at most this share of the time waited


def pause_after(waited: float, interval: float) -> float:
    """The pause before the next look, ``waited`` seconds into a wait polling at ``interval``."""
    return min(interval, max(FIRST_PAUSE, SHARE * max(waited, 0.0)))

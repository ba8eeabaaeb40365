"""How often a wait looks again: soon at first, then less often, never slower than its interval.

Most conditions hold soon after the change that causes them (a small volume restored, a VM's sshd
started a moment after Proxmox started the VM): a wait that polled at its full interval from the
start answered up to a whole interval late, while a few extra reads at the start cost little.
"""

from __future__ import annotations

from collections.abc import Iterator

# The first pause of a wait; each next one doubles up to the wait's interval.
FIRST_PAUSE = 0.1


def pauses(interval: float) -> Iterator[float]:
    """FIRST_PAUSE (or ``interval`` when shorter), then twice as long each time, up to it."""
    pause = min(FIRST_PAUSE, interval)
    while True:
        yield pause
        pause = min(pause * 2, interval)

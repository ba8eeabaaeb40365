"""How long the simulated homelab takes to start and to stop (the tests only check that it does).

Starts and stops the lab five times at the tests' time scale; prints a table; exits 0.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab import Lab  # noqa: E402

ROUNDS = 5


def main() -> int:
    starts, stops = [], []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory(prefix="drbot-bench-lab-") as tmp:
            began = time.monotonic()
            lab = Lab(Path(tmp) / "lab", time_scale=0.1).start()
            starts.append(time.monotonic() - began)
            began = time.monotonic()
            lab.stop()
            stops.append(time.monotonic() - began)
    print(f"{'lab (seconds)':<10} {'n':>3} {'median':>8} {'max':>8}")
    for name, values in (("start", starts), ("stop", stops)):
        print(f"{name:<10} {len(values):>3} {statistics.median(values):>8.2f} {max(values):>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

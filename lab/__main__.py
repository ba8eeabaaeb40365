"""`python -m lab [--dir .lab] [--time-scale 1.0] [--longhorn 1.10]`: the simulated homelab until Ctrl-C.

The lab lives beside drbot on 127.0.0.1, not inside it (it is not installed with drbot and needs the
`lab` extra), so it is started from a checkout; it prints the environment that points drbot at it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab import main
from lab.world import LonghornVersion


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(".lab"), help="where to write its files")
    parser.add_argument("--time-scale", type=float, default=1.0, help="speed of lab delays")
    parser.add_argument("--longhorn", choices=[v.value for v in LonghornVersion],
                        default=LonghornVersion.V1_10.value,
                        help="the Longhorn version it behaves as (its node-deletion rules)")
    args = parser.parse_args(argv)
    try:
        return main(args.dir, args.time_scale, LonghornVersion(args.longhorn))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(cli())

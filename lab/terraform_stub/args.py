"""The lab's terraform command line: global `-chdir=`, the subcommand and the options drbot
and the lab pass (others Terraform accepts are ignored; the rest is kept for the subcommand).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lab.terraform_stub.ui import Failed


@dataclass
class Args:
    command: str
    targets: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    destroy: bool = False
    json: bool = False
    auto_approve: bool = False
    lock: bool = True
    lock_timeout: float = 0.0
    detailed: bool = False
    refresh: bool = True
    out: str = ""
    rest: list[str] = field(default_factory=list)


def parse(argv: list[str]) -> tuple[Path, Args]:
    root = Path.cwd()
    while argv and argv[0].startswith("-chdir="):
        root = root / argv.pop(0).split("=", 1)[1]
    if not argv:
        raise Failed("No command", "Usage: terraform [global options] <subcommand> [args]")
    args = Args(command=argv[0])
    for arg in argv[1:]:
        name, _, value = arg.partition("=")
        name = "-" + name.lstrip("-")
        if name == "-target":
            args.targets.append(value)
        elif name == "-replace":
            args.replace.append(value)
        elif name == "-destroy":
            args.destroy = True
        elif name == "-json":
            args.json = True
        elif name == "-auto-approve":
            args.auto_approve = True
        elif name == "-lock":
            args.lock = value != "false"
        elif name == "-lock-timeout":
            args.lock_timeout = duration(value)
        elif name == "-detailed-exitcode":
            args.detailed = True
        elif name == "-refresh":
            args.refresh = value != "false"
        elif name == "-out":
            args.out = value
        elif name in (
            "-input",
            "-no-color",
            "-compact-warnings",
            "-parallelism",
            "-force",
            "-upgrade",
            "-reconfigure",
            "-backend-config",
        ):
            continue
        else:
            args.rest.append(arg)
    if args.command == "destroy":
        args.command, args.destroy = "apply", True
    return root, args


def plan_options(args: Args) -> list[str]:
    """The planning options given: a saved plan takes none of them."""
    return ([f"-target={t}" for t in args.targets] + [f"-replace={r}" for r in args.replace]
            + (["-destroy"] if args.destroy else []))


def duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text or 0)

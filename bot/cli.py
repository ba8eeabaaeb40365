"""`drbot`: the command line. Heavy imports happen inside each command, so --help stays fast."""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.runtime import Runtime


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drbot", description="Disaster-recovery chat-ops bot.")
    sub = parser.add_subparsers(dest="command", required=True)
    console = sub.add_parser("console", help="type /dr commands; see the job threads live")
    console.add_argument("--as", dest="speak_as", metavar="NAME",
                         help="speak as this person (lab configuration only)")
    console.add_argument("--script", type=Path, help="read commands from this file, not stdin")
    console.add_argument("--watch", action="store_true",
                         help="all-in-one only: also run the backup watch (alerts in the console)")
    sub.add_parser("bot", help="run the chat frontends, the relay and the reaper (needs REDIS_URL)")
    worker = sub.add_parser("worker", help="run jobs (needs REDIS_URL)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    sub.add_parser("scheduler", help="run the backup watch's schedule; exactly one (needs REDIS_URL)")
    sub.add_parser("check-config", help="validate the settings, policy and inventory files")
    sub.add_parser("doctor", help="check, read-only, every credential and connection the "
                                  "runbooks need, and drift (on the worker host)")
    ready = sub.add_parser("readiness", help="per scenario: runnable now?, RPO and RTO, and the "
                                             "backup timeline as a PNG (on the worker host; "
                                             "needs REDIS_URL)")
    ready.add_argument("--png", metavar="PATH", help="where to write the picture (default: "
                       "drbot-readiness-<UTC time>.png in the current directory)")
    inventory = sub.add_parser("inventory", help="work on the inventory file")
    inventory_sub = inventory.add_subparsers(dest="action", required=True)
    draft = inventory_sub.add_parser("import", help="draft hosts and nodes from Terraform state, "
                                                    "the Ansible inventory and the cluster")
    draft.add_argument("--diff", action="store_true",
                       help="show the differences from the current inventory instead")
    audit = sub.add_parser("audit", help="the audit trail (needs REDIS_URL)")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    export = audit_sub.add_parser("export", help="print the audit trail as JSON lines (for a SIEM)")
    export.add_argument("--since", required=True,
                        help="a duration (24h, 7d) or a date/time (2026-12-01, UTC by default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bot.errors import CommandError, ConfigError

    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"drbot: configuration error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"drbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001  (only an unreachable service is turned into a line)
        message = unreachable(exc)
        if message is None:
            raise
        print(f"drbot: {message}", file=sys.stderr)
        return 2


def unreachable(exc: BaseException) -> str | None:
    """One line for a service a process cannot start without; None for anything else (a bug,
    which keeps its traceback)."""
    import redis

    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        from urllib.parse import urlparse

        url = urlparse(os.environ.get("REDIS_URL") or os.environ.get("DRBOT_REDIS_URL") or "")
        where = f"{url.scheme}://{url.hostname}:{url.port or 6379}" if url.hostname else "Redis"
        reason = " ".join(str(exc).split())
        return (f"cannot reach Redis at {where} ({reason}); start it, or fix REDIS_URL "
                "(and its password)")
    return None


def _settings():  # type: ignore[no-untyped-def]
    from bot import logs
    from bot.config.settings import Settings

    settings = Settings.load()
    logs.setup(settings.log_level, settings.log_json)
    return settings


def _metrics_dir() -> None:
    """Work horses are forked per job: collect their metrics in files the worker serves. Must run
    before anything imports prometheus_client; the directory is private to this worker.

    prometheus_client names each process's files by its pid, so every job's horse created a
    file per metric type (three, each a 1 MiB mmap, created after the job's outcome and before
    the next job could start), and the folder grew by three files a job for the worker's whole
    life, all read again at every scrape. The worker runs one horse at a time, so its horses
    share one set of files under one name (prometheus_client's rule: processes that run at the
    same time must have distinct names; the worker and its horse do)."""
    import atexit
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="drbot-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    parent = os.getpid()
    atexit.register(lambda: os.getpid() == parent and shutil.rmtree(path, ignore_errors=True))

    from prometheus_client import values

    def process_name() -> str:
        return str(parent) if os.getpid() == parent else f"{parent}-horse"
    values.ValueClass = values.MultiProcessValue(process_identifier=process_name)


def _health(settings, **kwargs):  # type: ignore[no-untyped-def]
    """The /healthz, /readyz and /metrics endpoints on a thread, when DRBOT_HTTP_PORT is set."""
    if settings.http_port is None:
        return None
    from bot.chat.health import Background, Health

    return Background(Health(settings, **kwargs), settings.http_host, settings.http_port).start()


def cmd_worker(args: argparse.Namespace) -> int:
    if "prometheus_client" not in sys.modules:
        _metrics_dir()
    from bot.runtime import Runtime, freeze_loaded
    from bot.worker.refusal import worker_queue
    from bot.worker.runner import prepare
    from bot.worker.seen import default_dir
    from bot.worker.shutdown import stop_seconds
    from bot.worker.worker import DrbotWorker

    settings = _settings()
    settings.require("redis_url", "signing_key", "policy")
    settings.require_redis_password()
    rt = Runtime.from_settings(settings, patient=True)
    rt.settings.key()
    _ = rt.policy, rt.inventory  # validate the files before taking any job
    prepare(rt)
    _sweep_scratch(rt)
    if settings.http_port is not None:
        # Only a worker that serves /metrics loads the health server (aiohttp): a third of a
        # worker's start-up CPU otherwise.
        from bot.chat.health import worker_registry

        _health(settings, registry=worker_registry())
    _check_state_dir(settings.state_dir or default_dir())
    freeze_loaded()
    worker = DrbotWorker([worker_queue(rt.client, settings.queue)], connection=rt.client,
                         runtime=rt, worker_ttl=60, job_monitoring_interval=5,
                         maintenance_interval=30)
    worker.stop_grace = stop_seconds(settings.cancel_grace_seconds)
    worker.work(burst=args.burst, logging_level=settings.log_level.upper())
    return 0


def _check_state_dir(folder: Path) -> None:
    """The worker's state folder must be writable before it takes a job: without it, a record
    written back into Redis could run again after a restart."""
    from bot.errors import ConfigError

    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = folder / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"DRBOT_STATE_DIR={folder}: cannot write there ({exc.strerror}); give "
                          "the worker a writable folder of its own that survives restarts") from None


def _sweep_scratch(rt: Runtime) -> None:
    """Remove what verifications of a worker that died left in scratch space (/dr verify)."""
    import logging

    from adapters.verify.scratch import sweep

    for name in sweep(rt.inventory.backups.verify.scratch_dir):
        logging.getLogger("drbot.worker").info("removed %s left by a dead worker", name)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Every problem found, one line each; exit status 2 when there is any."""
    from bot import registry
    from bot.config import checks
    from bot.config.inventory import load_inventory
    from bot.config.policy import Policy

    settings = _settings()
    settings.require("policy")
    assert settings.policy is not None
    policy = Policy.load(settings.policy)
    inventory = load_inventory(settings.inventory)
    commands = [name for name, spec in registry.load(settings.plugins).items() if not spec.system]
    problems = (checks.settings_problems(settings)
                + checks.policy_problems(policy.data, str(settings.policy), commands)
                + checks.inventory_problems(inventory, str(settings.inventory or "inventory")))
    for problem in problems:
        print(f"drbot: {problem}", file=sys.stderr)
    if problems:
        return 2
    print(f"ok: {len(policy.data.people)} people, {len(policy.data.commands)} command rules, "
          f"{len(inventory.nodes)} nodes")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Green/red lines with fixes; exit status 1 when any line is red."""
    from bot.config.inventory import load_inventory
    from bot.doctor.run import check_all, report
    from bot.worker.services import Services

    settings = _settings()
    settings.require("inventory")
    inventory = load_inventory(settings.inventory)
    lines = check_all(Services(settings, inventory))
    print(report(lines))
    return 1 if any(line.red for line in lines) else 0


def cmd_readiness(args: argparse.Namespace) -> int:
    """The report on stdout, the picture's path last; exit status 1 when a scenario's runbook
    could not run now."""
    from bot.config.inventory import load_inventory
    from bot.readiness import report as readiness
    from bot.worker.services import Services

    settings = _settings()
    settings.require("inventory")
    settings.require("redis_url")
    built = readiness.run(Services(settings, load_inventory(settings.inventory)),
                          lambda text: print(f"… {text}", file=sys.stderr))
    print(built.text())
    if built.chart is not None:
        path = args.png or readiness.picture_name(built).replace("readiness-",
                                                                 "drbot-readiness-")
        with open(path, "wb") as f:
            f.write(built.chart.png)
        print(f"picture: {os.path.abspath(path)}")
    return 0 if all(s.verdict.runnable for s in built.scenarios) else 1


def cmd_inventory(args: argparse.Namespace) -> int:
    """The draft (YAML) on stdout, what could not be decided on stderr; --diff against the
    current inventory's hosts and nodes."""
    import difflib

    import yaml

    from adapters import terraform_state
    from adapters.ansible_inventory import listing
    from adapters.errors import AdapterError
    from adapters.kubernetes.nodes import list_nodes
    from bot.config import importer
    from bot.config.inventory import load_inventory
    from bot.errors import ConfigError
    from bot.worker.services import Services

    settings = _settings()
    settings.require("inventory")
    current = load_inventory(settings.inventory)
    if current.iac is None:
        raise ConfigError(f"{settings.inventory}: needs an iac section (where the Terraform and "
                          "Ansible projects are) to import from them")
    services = Services(settings, current)
    try:
        machines = importer.vms(terraform_state.show(services.terraform))
        hosts = importer.ansible_hosts(listing(services.ansible))
    except AdapterError as exc:
        raise ConfigError(str(exc)) from None
    try:
        roles = {n.name: "server" if n.etcd or "control-plane" in n.roles else "agent"
                 for n in list_nodes(services.kube)}
    except AdapterError:
        roles = None
    draft = importer.draft(machines, hosts, roles)
    text = yaml.safe_dump(draft.as_inventory(), sort_keys=False)
    if args.diff:  # both through the model, so defaults show alike on both sides
        from bot.config.inventory import Node

        old = yaml.safe_dump({"hosts": current.hosts, "nodes": {
            n: node.model_dump() for n, node in current.nodes.items()}}, sort_keys=False)
        text = yaml.safe_dump({"hosts": draft.hosts, "nodes": {
            n: Node.model_validate(v).model_dump() for n, v in draft.nodes.items()}},
            sort_keys=False)
        text = "".join(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                            str(settings.inventory), "imported"))
    print(text, end="")
    for line in draft.undecided:
        print(f"undecided: {line}", file=sys.stderr)
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    import asyncio

    from bot.errors import ConfigError

    terminal = args.script is None and sys.stdin.isatty() and sys.stdout.isatty()
    if terminal:  # answers, not log lines, on a person's screen (theirs and the worker's)
        os.environ.setdefault("DRBOT_LOG_LEVEL", "WARNING")
        os.environ.setdefault("DRBOT_LOG_JSON", "false")
    settings = _settings()
    settings.require("policy")
    if args.watch and settings.redis_url:
        raise ConfigError("--watch is for the all-in-one console (no REDIS_URL); with your own "
                          "Redis, run `drbot scheduler` next to the worker instead")
    everything = AllInOne(settings, watch=args.watch)
    with everything as settings:
        from bot.chat.serve import serve_console

        lines = args.script.open(encoding="utf-8") if args.script else sys.stdin
        echo = bool(args.script) or not sys.stdin.isatty()
        return asyncio.run(serve_console(settings, lines, args.speak_as, echo, terminal,
                                         private=everything.redis is not None))


def cmd_bot(args: argparse.Namespace) -> int:
    from bot.chat.serve import serve

    settings = _settings()
    settings.require("redis_url", "signing_key", "policy")
    settings.require_redis_password()
    return serve(settings)


def cmd_scheduler(args: argparse.Namespace) -> int:
    """The backup watch's scheduler (it blocks until SIGTERM)."""
    from bot.runtime import Runtime
    from bot.watch.scheduler import run as run_scheduler

    settings = _settings()
    settings.require("redis_url", "signing_key", "policy")
    settings.require_redis_password()
    rt = Runtime.from_settings(settings, patient=True)
    rt.settings.key()
    _ = rt.policy, rt.inventory
    _health(settings)
    return int(run_scheduler(rt) or 0)


class AllInOne:
    """With no REDIS_URL: a private Redis and a worker subprocess (and with ``watch`` the backup
    watch's scheduler), all ended on exit or Ctrl-C."""

    def __init__(self, settings, watch: bool = False):  # type: ignore[no-untyped-def]
        self.settings = settings
        self.watch = watch
        self.redis = None
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self):  # type: ignore[no-untyped-def]
        if self.settings.redis_url:
            return self.settings
        from pydantic import SecretStr

        from bot.private_redis import PrivateRedis

        self.redis = PrivateRedis()
        url = self.redis.start()
        key = self.settings.signing_key or SecretStr(secrets.token_hex(32))
        settings = self.settings.model_copy(update={"redis_url": url, "signing_key": key})
        env = dict(os.environ, REDIS_URL=url, DRBOT_SIGNING_KEY=key.get_secret_value(),
                   DRBOT_REDIS_ALLOW_NO_PASSWORD="true")  # noqa: S106  (private, loopback, ours alone)
        for process in ["worker", *(["scheduler"] if self.watch else [])]:
            self.processes.append(subprocess.Popen([sys.executable, "-m", "bot.cli", process],
                                                   env=env))
        return settings

    def __exit__(self, *exc: object) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.redis:
            self.redis.stop()


def cmd_audit(args: argparse.Namespace) -> int:
    """JSON lines, oldest first, one per audit entry since --since; stdout only, no banner."""
    import json

    from bot.records.audit import since_epoch
    from bot.runtime import Runtime

    settings = _settings()
    settings.require("redis_url")
    since = since_epoch(args.since)
    rt = Runtime.from_settings(settings, patient=True)
    for entry in rt.audit.entries(since):
        sys.stdout.write(json.dumps(entry, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


COMMANDS = {"console": cmd_console, "bot": cmd_bot, "worker": cmd_worker,
            "scheduler": cmd_scheduler, "check-config": cmd_check_config, "doctor": cmd_doctor,
            "readiness": cmd_readiness, "inventory": cmd_inventory, "audit": cmd_audit}

if __name__ == "__main__":
    sys.exit(main())

"""A `flux-bootstrap` program for the lab: the part of `flux bootstrap git` drbot depends on.

The real command pushes Flux's manifests to the fleet repository, installs Flux's controllers and
its namespace and applies its sync configuration, then waits until Flux has reconciled it. The
lab's Flux controllers always run, its namespaces are never lost (the emulator does not serve
Namespace objects) and the fleet repository is not modelled, so this (re)creates what the sync
configuration is, in the Kubernetes API the kubeconfig names: the GitRepository and the
Kustomization `flux-system` of the seed (`lab.seed.flux`), which the lab's cluster meltdown
loses. The Kustomization is what makes the other Flux objects come back: once reconciled, the
lab's Flux applies the fleet's Kustomizations again (see `lab.controllers.flux`).

    flux-bootstrap git --url=URL [--branch=main] [--path=clusters/homelab]
        [--secret-name=flux-system] [--kubeconfig=PATH] [--timeout=5m] [--silent]

It prints the real command's progress lines (`►`, `✔`, `◎`) and, when the API is unreachable or
refuses a request, or the objects are not reconciled in time, a last line `✗ <reason>` and exit
code 1. The Git credential (the Secret `--secret-name`) is neither created nor read: the lab's
source controller does not use it, and drbot re-applies it from `iac.flux_secret_file`.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import yaml

from lab.controllers.base import R_GITREPOSITORIES, R_KUSTOMIZATIONS, api_path, condition
from lab.kube_wire import merge_diff
from lab.seed.flux import BOOTSTRAP_NAME, FLEET_BRANCH, FLEET_PATH, git_repository, kustomization
from lab.servers import wait_until
from lab.terraform_stub.args import duration
from lab.world import FLUX_NS

POLL = 0.2
HTTP_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "flux-bootstrap (drbot lab)"  # in the lab's request log, apart from drbot's


class Failed(Exception):
    """Why the bootstrap failed: printed after `✗`."""


def say(line: str) -> None:
    print(line, flush=True)


def short_reason(exc: requests.RequestException) -> str:
    """`[Errno 111] Connection refused` out of requests' nested connection errors."""
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
    return found.group(0) if found else type(exc).__name__


@dataclass(frozen=True)
class Api:
    """The Kubernetes API of a kubeconfig's current context (server URL and bearer token)."""

    server: str
    session: requests.Session

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Api:
        try:
            config = yaml.safe_load(path.read_text())
            ctx = next(c["context"] for c in config["contexts"]
                       if c["name"] == config["current-context"])
            server = next(c["cluster"]["server"] for c in config["clusters"]
                          if c["name"] == ctx["cluster"])
            user = next(u.get("user") or {} for u in config["users"] if u["name"] == ctx["user"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration) as exc:
            raise Failed(f"Kubernetes client initialization failed: {path}: "
                         f"{type(exc).__name__} {exc}") from None
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        if user.get("token"):
            session.headers["Authorization"] = f"Bearer {user['token']}"
        return cls(str(server).rstrip("/"), session)

    def call(self, method: str, path: str, body: Any = None,
             content_type: str = "application/json", allowed: int = 0) -> requests.Response:
        """The response; Failed when the API is unreachable or answers an error (but `allowed`)."""
        try:
            resp = self.session.request(method, self.server + path, json=body,
                                        headers={"Content-Type": content_type},
                                        timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            raise Failed(f"the Kubernetes API at {self.server} is unreachable: "
                         f"{short_reason(exc)}") from None
        if resp.status_code >= 400 and resp.status_code != allowed:
            try:
                message = resp.json().get("message", "")
            except ValueError:
                message = resp.text[:200]
            raise Failed(f"{method} {path}: HTTP {resp.status_code} {message}".rstrip())
        return resp

    def get(self, res: Any, name: str) -> dict[str, Any] | None:
        resp = self.call("GET", api_path(res, FLUX_NS, name), allowed=404)
        return None if resp.status_code == 404 else resp.json()


def apply(api: Api, res: Any, obj: dict[str, Any]) -> None:
    """Create `obj` without status, or make the existing object's spec exactly `obj`'s."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    current = api.get(res, name)
    if current is None:
        body = {k: v for k, v in obj.items() if k != "status"}
        api.call("POST", api_path(res, FLUX_NS), body)
        action = "created"
    elif current.get("spec") != obj["spec"]:
        diff = merge_diff(current.get("spec") or {}, obj["spec"])
        api.call("PATCH", api_path(res, FLUX_NS, name), {"spec": diff}, MERGE_PATCH)
        action = "configured"
    else:
        action = "unchanged"
    say(f"✔ {kind} {FLUX_NS}/{name} {action}")


def reconciled(api: Api, res: Any, name: str) -> bool:
    obj = api.get(res, name) or {"metadata": {}}
    status = obj.get("status") or {}
    return (condition(obj, "Ready").get("status") == "True"
            and status.get("observedGeneration") == obj["metadata"].get("generation"))


def wait_reconciled(api: Api, res: Any, kind: str, timeout: float) -> None:
    say(f'◎ waiting for {kind} "{FLUX_NS}/{BOOTSTRAP_NAME}" to be reconciled')
    try:
        wait_until(lambda: reconciled(api, res, BOOTSTRAP_NAME), timeout, kind, interval=POLL)
    except TimeoutError:
        obj = api.get(res, BOOTSTRAP_NAME) or {}
        why = condition(obj, "Ready").get("message") or "no Ready condition"
        raise Failed(f"{kind} {FLUX_NS}/{BOOTSTRAP_NAME} not reconciled within "
                     f"{timeout:g}s: {why}") from None
    say(f"✔ {kind} reconciled successfully")


def bootstrap(args: argparse.Namespace) -> None:
    api = Api.from_kubeconfig(Path(args.kubeconfig).expanduser())
    now = datetime.now(UTC)
    path = "./" + args.path.removeprefix("./")
    say("► applying sync manifests")
    apply(api, R_GITREPOSITORIES, git_repository(now, args.url, args.branch, args.secret_name))
    apply(api, R_KUSTOMIZATIONS, kustomization(BOOTSTRAP_NAME, path, now))
    say("✔ reconciled sync configuration")
    timeout = duration(args.timeout)
    wait_reconciled(api, R_GITREPOSITORIES, "GitRepository", timeout)
    wait_reconciled(api, R_KUSTOMIZATIONS, "Kustomization", timeout)
    say("✔ bootstrap finished")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flux-bootstrap",
                                     description="the lab's `flux bootstrap` (Git only)")
    parser.add_argument("provider", choices=["git"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--branch", default=FLEET_BRANCH)
    parser.add_argument("--path", default=FLEET_PATH)
    parser.add_argument("--secret-name", default=BOOTSTRAP_NAME)
    parser.add_argument("--kubeconfig",
                        default=(os.environ.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep)[0])
    parser.add_argument("--timeout", default="5m")
    parser.add_argument("--silent", action="store_true", help="no prompt (there is none)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        bootstrap(args)
    except Failed as exc:
        say(f"✗ {exc}")
        return 1
    except KeyboardInterrupt:
        say("✗ interrupted")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

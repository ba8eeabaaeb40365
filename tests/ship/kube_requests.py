"""A pytest plugin that collects the Kubernetes API requests drbot's adapters make, as RBAC sees
them: (verb, API group, resource[/subresource]).

Fed by the test servers' request logs: after each test that used the Kubernetes emulator
(lab/fakes/kube.py's StandaloneKube) or the simulated lab (lab's ``world.kube_requests()``),
its requests are read before the fixtures stop. Only drbot's own requests count, told apart by
its User-Agent (the tests' own seeding, the lab's playbooks and controllers, and tests poking the
API with the plain client are left out). ``tests/adapters/kubernetes/test_client.py`` is left
out: it exercises the generic client with objects no adapter touches.

At the end of the session the collector writes what it saw (requests, and the test files they
came from) as JSON: to the file named by ``DRBOT_KUBE_REQUESTS_OUT``, and, when
``DRBOT_KUBE_REQUESTS_DIR`` names a directory, to a file of its own in it (one per process, so
every pytest-xdist worker writes its share; ``read_dir`` takes the union).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.kubernetes.client import USER_AGENT

Access = tuple[str, str, str]  # (verb, group, resource)
GENERIC = ("tests/adapters/kubernetes/test_client.py",)
OUT = "DRBOT_KUBE_REQUESTS_OUT"
DIR = "DRBOT_KUBE_REQUESTS_DIR"


def access(method: str, path: str, query: dict[str, str]) -> Access | None:
    """The RBAC request behind one HTTP request (None for discovery and non-resource paths)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    plural, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2:3]
    resource = "/".join([plural, *sub])
    method = method.upper()
    if method == "GET":
        verb = "watch" if query.get("watch") in ("true", "1") else "get" if name else "list"
    else:
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update",
                "DELETE": "delete" if name else "deletecollection"}[method]
    return verb, group, resource


def from_emulator(server: Any) -> set[Access]:
    found = set()
    for r in server.requests(lambda request: True):
        if str(r.headers.get("User-Agent", "")) == USER_AGENT:
            method = str(r.method.value if hasattr(r.method, "value") else r.method)
            item = access(method, r.url.path, dict(r.params))
            if item:
                found.add(item)
    return found


# A websocket exec is a GET upgrade, authorized as get and, from Kubernetes 1.35
# (AuthorizePodWebsocketUpgradeCreatePermission), also as create on the same subresource. The
# client's websocket sends no User-Agent (kubernetes stream/ws_client.py create_websocket passes
# on the authorization header only), so an exec counts as drbot's whoever's agent it lacks: no
# test execs in the lab with another client.
WEBSOCKET = {("get", "", "pods/exec"): ("create", "", "pods/exec")}


def _drbots(user_agent: str, path: str) -> bool:
    return user_agent == USER_AGENT or (not user_agent and path.endswith("/exec"))


def from_lab(lab: Any) -> set[Access]:
    """drbot's requests only: the lab's playbooks (standing for K3s itself) and tests that poke
    the lab with the plain client speak to the same API."""
    found = {a for r in lab.world.kube_requests()
             if _drbots(r.user_agent, r.path) and (a := access(r.method, r.path, r.query))}
    return found | {WEBSOCKET[a] for a in found if a in WEBSOCKET}


class Collector:
    def __init__(self) -> None:
        self.seen: set[Access] = set()
        self.files: set[str] = set()  # test files that contributed

    def read(self, item: pytest.Item) -> None:
        from lab import Lab
        from lab.fakes.kube import StandaloneKube

        if item.nodeid.startswith(GENERIC):
            return
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, StandaloneKube):
                found = from_emulator(value)
            elif isinstance(value, Lab):
                found = from_lab(value)
            else:
                continue
            self.seen |= found
            self.files.add(item.nodeid.split("::")[0])

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        try:
            self.read(item)
        except Exception as exc:  # noqa: BLE001  (a dead server must not fail someone else's test)
            item.warn(pytest.PytestWarning(f"kube request collector: {exc!r}"))
        yield

    def dump(self) -> str:
        return json.dumps({"seen": sorted(self.seen), "files": sorted(self.files)})

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        out, folder = os.environ.get(OUT), os.environ.get(DIR)
        if out:
            Path(out).write_text(self.dump())
        if folder and self.files and Path(folder).is_dir():
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            name = Path(folder) / f"{worker}-{os.getpid()}.json"
            temp = name.with_suffix(".tmp")
            temp.write_text(self.dump())
            temp.replace(name)  # a reader never sees half a file


COLLECTOR = Collector()


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(COLLECTOR):
        config.pluginmanager.register(COLLECTOR, "drbot-kube-requests")


def merge(into: set[Access], items: Iterable[Iterable[str]]) -> None:
    into.update((str(v), str(g), str(r)) for v, g, r in items)


def read_dir(folder: Path) -> tuple[set[Access], set[str]]:
    """The union of the requests and test files every collector wrote to ``folder`` (empty
    sets when it does not exist)."""
    seen: set[Access] = set()
    files: set[str] = set()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = json.loads(path.read_text())
        merge(seen, data["seen"])
        files.update(str(f) for f in data["files"])
    return seen, files

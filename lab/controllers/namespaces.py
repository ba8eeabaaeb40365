"""Kubernetes' namespace controller: a Terminating namespace is emptied, then removed.

The API server only marks a deleted namespace Terminating (its ``kubernetes`` finalizer); the
namespace controller deletes every namespaced object in it and then finalizes it, after which it
is gone (kubernetes pkg/controller/namespace/deletion/namespaced_resources_deleter.go). A PV
bound to a claim of that namespace stays, Released, when its reclaim policy is Retain.
"""

from __future__ import annotations

from typing import Any

from lab.controllers.base import R_NAMESPACES, ControllerBase
from lab.kube import RESOURCES


def _namespaced() -> list[Any]:
    import kmock

    out = []
    for group_version, plural, _kind, namespaced, _short in RESOURCES:
        if namespaced:
            group, _, version = group_version.rpartition("/")
            out.append(kmock.resource(group, version, plural))
    return out


class NamespaceController(ControllerBase):
    """Empties and removes the namespaces clients deleted."""

    async def namespaces(self) -> None:
        for ns in self.kube.live(R_NAMESPACES):
            if (ns.get("status") or {}).get("phase") != "Terminating":
                continue
            name = ns["metadata"]["name"]
            left = 0
            for res in _namespaced():
                for obj in self.kube.live(res):
                    if obj["metadata"].get("namespace") == name:
                        left += 1
                        await self.delete(res, name, obj["metadata"]["name"])
            if left:
                self.state.record(f"namespace {name}: {left} object(s) deleted")
                self.forget("namespace-gone", name)
            elif self.due(("namespace-gone", name), self.t.namespace_delete):
                await self.delete(R_NAMESPACES, None, name)
                self.forget("namespace-gone", name)
                self.state.record(f"namespace {name} deleted")

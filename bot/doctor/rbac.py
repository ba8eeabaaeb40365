"""The worker's Kubernetes permissions as data: the rules of the chart's ClusterRole
(helm/drbot/templates/clusterrole.yaml), which the doctor checks one (verb, resource) at a time
with SelfSubjectAccessReview. tests/ship/test_chart.py keeps the two equal, so a rule added to the
chart is checked here too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Access:
    verb: str
    group: str
    resource: str
    subresource: str = ""

    def __str__(self) -> str:
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        return f"{self.verb} {res}" + (f".{self.group}" if self.group else "")


# (group, resources, verbs), in the order of the ClusterRole.
RULES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("", ("nodes",), ("get", "list", "patch", "delete")),
    ("", ("pods",), ("get", "list", "create")),
    ("", ("pods/log",), ("get",)),
    ("", ("pods/exec",), ("get", "create")),
    ("", ("pods/eviction",), ("create",)),
    ("policy", ("poddisruptionbudgets",), ("list",)),
    ("", ("persistentvolumes",), ("get", "list", "create", "patch", "delete")),
    ("", ("persistentvolumeclaims",), ("get", "create", "delete")),
    ("apps", ("deployments", "statefulsets"), ("get", "list", "patch")),
    ("", ("namespaces",), ("get", "list", "create", "delete")),
    ("", ("secrets",), ("create", "patch")),
    ("kustomize.toolkit.fluxcd.io", ("kustomizations",), ("get", "list", "patch")),
    ("helm.toolkit.fluxcd.io", ("helmreleases",), ("get", "list", "patch")),
    ("source.toolkit.fluxcd.io",
     ("gitrepositories", "ocirepositories", "buckets", "helmcharts", "helmrepositories"),
     ("get", "patch")),
    ("longhorn.io", ("volumes",), ("get", "list", "create", "delete")),
    ("longhorn.io", ("settings",), ("get",)),
    ("longhorn.io", ("replicas",), ("list", "delete")),
    ("longhorn.io", ("engines", "backupvolumes"), ("list",)),
    ("longhorn.io", ("recurringjobs",), ("list",)),
    ("longhorn.io", ("nodes",), ("list", "patch", "delete")),
    ("longhorn.io", ("backups",), ("get", "list", "create")),
    ("longhorn.io", ("backuptargets",), ("get", "list", "patch")),
    ("longhorn.io", ("snapshots",), ("get", "list", "create", "delete")),
    ("postgresql.cnpg.io", ("clusters",), ("get", "list", "create")),
    ("postgresql.cnpg.io", ("backups",), ("get", "list", "create")),
    ("postgresql.cnpg.io", ("scheduledbackups",), ("list",)),
    ("barmancloud.cnpg.io", ("objectstores",), ("get", "create")),
    ("k3s.cattle.io", ("etcdsnapshotfiles",), ("list",)),
]


def accesses() -> list[Access]:
    """Every (verb, resource) the worker's runbooks need, cluster-wide."""
    out = []
    for group, resources, verbs in RULES:
        for resource in resources:
            name, _, sub = resource.partition("/")
            out.extend(Access(verb, group, name, sub) for verb in verbs)
    return out

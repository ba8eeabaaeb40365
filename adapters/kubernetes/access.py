"""What drbot's own account may do: SelfSubjectAccessReview (authorization.k8s.io/v1).

The API server answers "can I <verb> <resource>?" for the caller without changing anything: the
review is not stored (kubernetes pkg/registry/authorization/selfsubjectaccessreview/rest.go
returns it with ``status`` filled by the authorizer). Every authenticated user may create one
(the ``system:basic-user`` ClusterRole of plugin/pkg/auth/authorizer/rbac/bootstrappolicy).
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.kubernetes.client import Kube


@dataclass(frozen=True)
class AccessVerdict:
    allowed: bool
    reason: str = ""


def can_i(kube: Kube, verb: str, group: str, resource: str, subresource: str = "") -> AccessVerdict:
    """Cluster-wide (no namespace): the worker's ClusterRole grants its rules everywhere."""
    attributes = {"verb": verb, "group": group, "resource": resource}
    if subresource:
        attributes["subresource"] = subresource
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}}
    answer = kube.call(kube.authorization.create_self_subject_access_review, body)
    status = getattr(answer, "status", None)
    if status is None:
        return AccessVerdict(False, "the API server's answer had no status")
    reason = str(getattr(status, "reason", "") or getattr(status, "evaluation_error", "") or "")
    return AccessVerdict(bool(status.allowed), reason)

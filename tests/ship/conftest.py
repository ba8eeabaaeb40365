"""tests/ship: registers the session-wide Kubernetes request collector (see kube_requests.py), so
that a whole-suite run collects what every earlier test's adapters asked of the API server."""

from tests.ship.kube_requests import pytest_configure  # noqa: F401  (a pytest hook)

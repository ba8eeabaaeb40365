"""Fault injection against the simulated homelab: the e2e fixtures, shared."""

from tests.e2e.conftest import drbot_lab, lab  # noqa: F401

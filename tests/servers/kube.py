"""Fixtures for the kube test server (filled in by the adapter work)."""

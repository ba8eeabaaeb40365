"""Fixtures for the pve test server (filled in by the adapter work)."""

"""Shared fixtures: each realistic server lives in tests/servers/<system>.py."""

pytest_plugins = [
    "tests.servers.redis",
    "tests.servers.kube",
    "tests.servers.pve",
    "tests.servers.s3",
]

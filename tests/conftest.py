"""Shared fixtures: each realistic server lives in lab/fakes/<system>.py."""

pytest_plugins = [
    "lab.fakes.redis",
    "lab.fakes.kube",
    "lab.fakes.pve",
    "lab.fakes.s3",
]

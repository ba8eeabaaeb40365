"""A real S3 API for tests: moto's threaded server on a free 127.0.0.1 port, spoken to by boto3.

``s3_server`` lives for the session; ``s3_store`` gives each test a fresh bucket of its own.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.s3 import ObjectStore, StoreConfig

FAKE_ACCESS_KEY = "testing-access-key"
FAKE_SECRET_KEY = "testing-secret-key"
_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
    "AWS_DEFAULT_REGION": "us-east-1",
}
_UNSET_ENV = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE")
_counter = itertools.count()


@dataclass
class S3Server:
    """A running moto server: its endpoint and a way to make stores and raw clients for it."""

    endpoint_url: str
    server: Any

    def client(self, **kwargs: Any) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
            aws_access_key_id=kwargs.pop("access_key", FAKE_ACCESS_KEY),
            aws_secret_access_key=kwargs.pop("secret_key", FAKE_SECRET_KEY), **kwargs)

    def new_bucket(self) -> str:
        name = f"drbot-{next(_counter)}-{uuid.uuid4().hex[:8]}"
        self.client().create_bucket(Bucket=name)
        return name

    def config(self, bucket: str, prefix: str = "", **kwargs: Any) -> StoreConfig:
        url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        return StoreConfig(url, endpoint_url=self.endpoint_url, region="us-east-1",
                           access_key=kwargs.pop("access_key", FAKE_ACCESS_KEY),
                           secret_key=kwargs.pop("secret_key", FAKE_SECRET_KEY), **kwargs)

    def store(self, bucket: str, prefix: str = "", **kwargs: Any) -> ObjectStore:
        return ObjectStore(self.config(bucket, prefix, **kwargs))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in (*_FAKE_ENV, *_UNSET_ENV)}
    for key in _UNSET_ENV:
        os.environ.pop(key, None)
    os.environ.update(_FAKE_ENV)  # boto3 anywhere in the tests only ever sees fake credentials
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not one log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}", server)
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_store(s3_server: S3Server) -> ObjectStore:
    """An ObjectStore on a fresh, empty bucket of its own."""
    return s3_server.store(s3_server.new_bucket())

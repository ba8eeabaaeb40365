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
from adapters.store_s3 import boto3_session

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
        return boto3_session().client(
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

    def iam_user(self, name: str, actions: tuple[str, ...], resources: tuple[str, ...]
                 ) -> tuple[str, str]:
        """An IAM user allowed ``actions`` on ``resources`` and nothing else; its key pair.

        The IAM client signs with the fake keys explicitly: it never depends on which AWS_*
        variables or shared files the process happens to have."""
        import json

        iam = boto3_session().client(
            "iam", endpoint_url=self.endpoint_url, region_name="us-east-1",
            aws_access_key_id=FAKE_ACCESS_KEY, aws_secret_access_key=FAKE_SECRET_KEY)
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="only-these", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions),
                           "Resource": list(resources)}]}))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def enforce_iam(self) -> None:
        """From now on moto checks signatures and IAM policies (its /moto-api/reset-auth).
        Global to the moto process: use it only on a server of its own (``own_s3``)."""
        import requests

        requests.post(f"{self.endpoint_url}/moto-api/reset-auth", data=b"0",
                      timeout=10).raise_for_status()


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


# Listing a bucket. AWS authorizes ListObjects/ListObjectsV2 with the IAM action s3:ListBucket
# (IAM User Guide, "Actions defined by Amazon S3"). moto 5.2 authorizes each S3 request by its API
# operation name instead (moto/core/authorization.py passes `self._get_action()`, the botocore
# operation, to moto/iam/access_control.py, which checks f"{service}:{action}"), so a policy that
# means "may list" in both names both. s3:GetObject is the same in both.
LIST_ACTIONS = ("s3:ListBucket", "s3:ListObjectsV2")
READ_ACTIONS = ("s3:GetObject",)


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
def own_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto in a process of its own, for tests that switch on IAM enforcement: enforcement and
    IAM users are global to a moto process, and ``s3_server`` is shared by every test of this
    pytest worker (and lives in its process, as the lab's moto does)."""
    import subprocess
    import sys

    import requests

    from lab.servers import free_port, wait_until

    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/moto-api/", timeout=2).ok
        except requests.ConnectionError:
            assert proc.poll() is None, f"moto's server exited; see {log_path}"
            return False
    try:
        wait_until(up, 60, "moto's own server")
        yield S3Server(url, proc)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def s3_store(s3_server: S3Server) -> ObjectStore:
    """An ObjectStore on a fresh, empty bucket of its own."""
    return s3_server.store(s3_server.new_bucket())

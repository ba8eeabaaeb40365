"""S3 credentials in drbot's two-line format, in the AWS shared-credentials format (a profile),
or from the AWS_* variables; each error one line naming the file and the fix; every secret known
to the redactor."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import credentials
from bot.config.inventory import Inventory
from bot.config.settings import Settings
from bot.errors import ConfigError
from bot.redact import REDACT
from bot.worker.services import Services
from lab.fakes.s3 import S3Server

AWS = """\
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret-0123456789

[backups]
aws_access_key_id = AKIABACKUPS
aws_secret_access_key = backups-secret-0123456789
region = eu-west-1
"""


def test_both_formats() -> None:
    assert credentials.parse("access_key=AK1\nsecret_key=SK1\n", "f") == \
        credentials.S3Credentials("AK1", "SK1")
    assert credentials.parse(AWS, "f") == credentials.S3Credentials(
        "AKIADEFAULT", "default-secret-0123456789")
    assert credentials.parse("# mine\n" + AWS, "f", "backups").access_key == "AKIABACKUPS"


@pytest.mark.parametrize(("text", "profile", "message"), [
    ("access_key=AK1\n", None, "f: needs access_key=... and secret_key=... lines (or the AWS "
                               "shared-credentials format)"),
    (AWS, "nightly", "f: no [nightly] section (sections: default, backups); set the store's "
                     "profile"),
    ("[default]\naws_access_key_id = A\n", None, "f: [default] needs aws_access_key_id and "
                                                 "aws_secret_access_key"),
    ("access_key=A\nsecret_key=S\n", "backups", "f: profile 'backups' is set but the file is not "
                                                "in the AWS shared-credentials format ([profile] "
                                                "sections)"),
])
def test_mistakes_are_one_line(text: str, profile: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        credentials.parse(text, "f", profile)
    assert str(caught.value) == message


def services(s3_server: S3Server, bucket: str, **store: object) -> Services:
    inventory = Inventory.model_validate({"backups": {"longhorn_store": {
        "url": f"s3://{bucket}/", "endpoint_url": s3_server.endpoint_url, **store}}})
    return Services(Settings(), inventory)


def test_a_store_reads_with_an_aws_credentials_file(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="a", Body=b"x")
    path = tmp_path / "aws-credentials"
    path.write_text(AWS)
    store = services(s3_server, bucket, credentials_file=str(path), profile="backups").store(
        "longhorn")
    assert store.config.access_key == "AKIABACKUPS"
    assert [o.key for o in store.list()] == ["a"]
    assert REDACT("key backups-secret-0123456789 leaked") == "key [redacted] leaked"


def test_without_a_file_the_aws_variables(s3_server: S3Server,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-0123456789")
    bucket = s3_server.new_bucket()
    store = services(s3_server, bucket).store("longhorn")
    assert (store.config.access_key, store.config.secret_key) == ("AKIAFROMENV",
                                                                  "env-secret-0123456789")
    assert list(store.list()) == []
    assert "env-secret-0123456789" not in REDACT("env-secret-0123456789")

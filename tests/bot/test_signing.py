"""The signed envelope (bot/records/signing.py), unit by unit: what a Redis writer without the key
can and cannot do to a record, each way refused with its own one-line reason, never a crash."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from bot.errors import RecordForged
from bot.records.signing import Signer, canonical, digest

KEY = b"k" * 32
RECORD = {"id": "0000abcd", "status": "queued", "n": [1, 2]}


def test_canonical_is_sorted_compact_ascii_json() -> None:
    assert canonical({"b": 1, "a": "é"}) == b'{"a":"\\u00e9","b":1}'


def test_digest_is_the_first_16_hex_of_sha256_and_ignores_key_order() -> None:
    expected = hashlib.sha256(b'{"a":1,"b":2}').hexdigest()[:16]
    assert digest({"b": 2, "a": 1}) == digest({"a": 1, "b": 2}) == expected
    assert digest({"a": 1, "b": 3}) != expected


def test_sign_is_hmac_sha256_of_the_canonical_form() -> None:
    want = hmac.new(KEY, b'{"a":1}', hashlib.sha256).hexdigest()
    assert Signer(KEY).sign({"a": 1}) == want
    assert Signer(b"other").sign({"a": 1}) != want


def test_verify_accepts_only_our_signature_as_a_string() -> None:
    signer = Signer(KEY)
    sig = signer.sign(RECORD)
    assert signer.verify(RECORD, sig) is True
    assert signer.verify({**RECORD, "status": "done"}, sig) is False
    assert signer.verify(RECORD, Signer(b"other").sign(RECORD)) is False
    assert signer.verify(RECORD, sig.encode()) is False  # bytes are not a signature we made
    assert signer.verify(RECORD, None) is False


def test_a_sealed_record_opens_with_when_it_was_signed() -> None:
    signer = Signer(KEY)
    raw = signer.seal(RECORD, "drbot:job:0000abcd", at=1700000000.12345)
    sealed = signer.opened(raw, "job 0000abcd", "drbot:job:0000abcd")
    assert sealed.record == RECORD and sealed.signed == 1700000000.123
    assert signer.open(raw.decode(), "job", "drbot:job:0000abcd") == RECORD
    envelope = json.loads(raw)
    assert set(envelope) == {"bound", "record", "signed", "sig"}
    assert envelope["bound"] == "drbot:job:0000abcd"


def test_seal_without_a_time_uses_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.records.signing.time.time", lambda: 1234.56789)
    raw = Signer(KEY).seal(RECORD, "b")
    assert Signer(KEY).opened(raw, "x", "b").signed == 1234.568


def forged(raw: bytes, **change: Any) -> bytes:
    blob = json.loads(raw)
    blob.update(change)
    return json.dumps(blob).encode()


@pytest.mark.parametrize(("raw", "why"), [
    (None, "not a sealed record"), (b"", "not a sealed record"), (b"\xff", "not a sealed record"),
    (b"[1]", "not a sealed record"), (b'"text"', "not a sealed record"),
    (b'{"bound": "b", "record": {}, "signed": 1}', "not a sealed record"),  # no signature
    (b'{"bound": "b", "record": {}, "sig": "x"}', "not a sealed record"),  # no time
], ids=repr)
def test_malformed_values_are_refused_not_crashed_on(raw: Any, why: str) -> None:
    with pytest.raises(RecordForged) as refused:
        Signer(KEY).opened(raw, "job x", "b")
    assert str(refused.value) == f"job x: {why}"


def test_a_record_changed_or_signed_with_another_key_is_refused() -> None:
    raw = Signer(KEY).seal(RECORD, "b", at=1.0)
    for bad in (forged(raw, record={**RECORD, "status": "done"}), forged(raw, signed=2.0),
                forged(raw, sig=123), Signer(b"other").seal(RECORD, "b", at=1.0)):
        with pytest.raises(RecordForged, match="^job x: signature does not match$"):
            Signer(KEY).opened(bad, "job x", "b")


def test_a_record_copied_under_another_key_is_refused() -> None:
    raw = Signer(KEY).seal(RECORD, "drbot:job:aaaaaaaa", at=1.0)
    with pytest.raises(RecordForged) as refused:
        Signer(KEY).opened(raw, "job b", "drbot:job:bbbbbbbb")
    assert str(refused.value) == ("job b: signed for 'drbot:job:aaaaaaaa', found under "
                                  "'drbot:job:bbbbbbbb' (a record copied from elsewhere)")


@pytest.mark.parametrize(("record", "signed"), [([1], 1.0), ("text", 1.0), ({"a": 1}, "1"),
                                                ({"a": 1}, None)], ids=repr)
def test_a_signed_envelope_of_the_wrong_shape_is_refused(record: Any, signed: Any) -> None:
    """Only drbot holds the key, but an envelope it never makes is still not trusted."""
    signer = Signer(KEY)
    envelope = {"bound": "b", "record": record, "signed": signed}
    raw = canonical({**envelope, "sig": signer.sign(envelope)})
    with pytest.raises(RecordForged, match="^x: not a sealed record$"):
        signer.opened(raw, "x", "b")


def test_an_integer_time_is_accepted() -> None:
    signer = Signer(KEY)
    envelope = {"bound": "b", "record": {}, "signed": 5}
    raw = canonical({**envelope, "sig": signer.sign(envelope)})
    assert signer.opened(raw, "x", "b").signed == 5.0


def test_open_refuses_naming_what_it_opened() -> None:
    with pytest.raises(RecordForged, match="^job x: not a sealed record$"):
        Signer(KEY).open(b"", "job x", "b")

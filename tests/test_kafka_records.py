"""Decoding what arrives on posts.raw: every record is a post or a reason, never an exception."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from pipeline.bus.interface import Message
from pipeline.bus.kafka_records import (
    MAX_DEAD_ORIGINAL_BYTES,
    MAX_POST_BYTES,
    Rejected,
    dead_letter,
    dead_letter_record,
    decode_post,
)
from pipeline.records import DeadLetter, Post
from tests.helpers import post_bytes

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def message(value: bytes | None, key: bytes | None = None) -> Message:
    return Message("posts.raw", 1, 42, key, value, 0, (("x-unknown", b"\xff"),))


def test_a_good_post_decodes_whatever_its_key_and_headers() -> None:
    post = decode_post(message(post_bytes(7), key=None))
    assert isinstance(post, Post) and post.id == "test:7"


@pytest.mark.parametrize(
    ("value", "key", "reason", "post_id", "skip"),
    [
        (None, None, "tombstone", None, True),
        (None, b"test:1", "tombstone", None, True),
        (b"\xff\xfe{}", b"test:9", "not UTF-8", "test:9", False),
        (b"\xff\xfe{}", b"\xff", "not UTF-8", None, False),
        (b"x" * (MAX_POST_BYTES + 1), b"test:3", "oversized", "test:3", False),
        (b'{"source": "test", "native_id": "5"}', None, "invalid post", "test:5", False),
        (b"[1, 2]", b"k", "invalid post", "k", False),
        (b"not json", None, "invalid post", None, False),
    ],
)
def test_what_is_not_a_post_is_rejected_with_its_reason(
    value: bytes | None, key: bytes | None, reason: str, post_id: str | None, skip: bool
) -> None:
    got = decode_post(message(value, key))
    assert isinstance(got, Rejected)
    assert got.reason.startswith(reason), got.reason
    assert (got.post_id, got.skip) == (post_id, skip)


def test_a_dead_letter_is_keyed_by_post_id_and_says_where_it_came_from() -> None:
    value = json.dumps({"source": "test", "native_id": "5"}).encode()
    letter = dead_letter(message(value), "parse", "invalid post: text: missing", NOW, "test:5")
    body, key, headers = dead_letter_record(letter)
    assert key == b"test:5"
    assert dict(headers) == {
        "triage.stage": b"parse",
        "triage.reason": b"invalid post: text: missing",
        "triage.source.topic": b"posts.raw",
        "triage.source.partition": b"1",
        "triage.source.offset": b"42",
    }
    back = DeadLetter.model_validate_json(body)
    assert base64.b64decode(back.original) == value and back.post_id == "test:5"


def test_a_huge_original_is_cut_and_the_reason_says_so() -> None:
    value = b"z" * (MAX_DEAD_ORIGINAL_BYTES + 10)
    letter = dead_letter(message(value), "parse", "oversized", NOW)
    assert len(base64.b64decode(letter.original)) == MAX_DEAD_ORIGINAL_BYTES
    assert "cut to its first" in letter.reason
    _, key, headers = dead_letter_record(letter)
    assert key is None and dict(headers)["triage.stage"] == b"parse"

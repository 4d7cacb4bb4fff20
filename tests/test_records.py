"""The Post schema: what it accepts, what it refuses and why."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.records import MAX_TEXT_CHARS, Post, validation_reason

GOOD = {
    "source": "x",
    "native_id": "123",
    "author": {"id": "9", "followers": 10},
    "text": "where is my order?",
    "created_at": "2026-11-01T10:00:00",
}


def test_ids_are_stable_and_naive_times_are_utc() -> None:
    post = Post.model_validate(GOOD)
    assert post.id == "x:123"
    assert post.created_at == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert Post.model_validate_json(post.model_dump_json()) == post


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"text": ""}, "text"),
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "text"),
        ({"source": "Not A Source"}, "source"),
        ({"native_id": "has:colon"}, "native_id"),
        ({"author": {"id": "1", "followers": -5}}, "author.followers"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_posts_are_refused_with_the_field_named(change: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Post.model_validate({**GOOD, **change})
    assert validation_reason(exc.value).startswith(f"invalid post: {where}")


@given(st.binary(max_size=300))
def test_no_bytes_crash_the_parser(data: bytes) -> None:
    try:
        Post.model_validate_json(data)
    except ValidationError as exc:
        assert validation_reason(exc).startswith("invalid post")

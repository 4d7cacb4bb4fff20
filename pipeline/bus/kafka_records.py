"""What a record on ``posts.raw`` must be, and what becomes of one that is not.

Anything may arrive on a topic that outsiders produce to: a null value (a tombstone, which
Kafka's console tools and compaction both make), a null key, bytes that are not UTF-8, a value
far larger than any post, headers nobody asked for. Decoding turns each record into a ``Post`` or
a ``Rejected`` with its reason, and never raises, so one record can never stop the worker.
Tombstones are skipped (there are no bytes to keep); everything else rejected becomes a dead
letter, keyed by the post id when one can be read and carrying where it came from in its
headers, so that an operator can find, filter and reprocess it with Kafka's own tools.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from pipeline.bus.interface import Headers, Message
from pipeline.records import DeadLetter, Post, validation_reason

# The largest value the worker parses as a post. A post's text is at most 20,000 characters
# (80 KB of UTF-8); the rest of the budget is for the connector's ``raw`` payload.
MAX_POST_BYTES = 1024 * 1024
# A dead letter keeps at most this much of its original (base64 makes it 4/3 larger), so that it
# fits the dead-letter topic's own message limit (``pipeline.bus.topics``).
MAX_DEAD_ORIGINAL_BYTES = 2 * 1024 * 1024
MAX_REASON_CHARS = 2000
MAX_KEY_CHARS = 256
# Dead-letter headers: what a `kafka-console-consumer --property print.headers=true` shows.
HEADER_STAGE = "triage.stage"
HEADER_REASON = "triage.reason"
HEADER_TOPIC = "triage.source.topic"
HEADER_PARTITION = "triage.source.partition"
HEADER_OFFSET = "triage.source.offset"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that is not a post: dead-lettered with ``reason``, or skipped if ``skip``."""

    reason: str
    post_id: str | None = None
    skip: bool = False


def decode_post(message: Message) -> Post | Rejected:
    """The post a record holds, or why it holds none. Never raises."""
    value = message.value
    if value is None:
        return Rejected("tombstone (null value): nothing to triage", skip=True)
    if len(value) > MAX_POST_BYTES:
        return Rejected(
            f"oversized: {len(value):,} bytes, a post may be at most {MAX_POST_BYTES:,}",
            post_id=_key_id(message.key),
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(
            f"not UTF-8: {exc.reason} at byte {exc.start}", post_id=_key_id(message.key)
        )
    try:
        return Post.model_validate_json(text)
    except ValidationError as exc:
        return Rejected(validation_reason(exc), post_id=readable_post_id(text, message.key))


def readable_post_id(text: str, key: bytes | None) -> str | None:
    """``<source>:<native id>`` if the bad JSON still names them, else the record's key."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        source, native = doc.get("source"), doc.get("native_id")
        if isinstance(source, str) and isinstance(native, str) and source and native:
            return f"{source}:{native}"[:MAX_KEY_CHARS]
    return _key_id(key)


def _key_id(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        return key.decode("utf-8")[:MAX_KEY_CHARS]
    except UnicodeDecodeError:
        return None


def dead_letter(
    message: Message, stage: str, reason: str, now: datetime, post_id: str | None = None
) -> DeadLetter:
    """The dead letter of a consumed record: its original bytes (cut if huge), and why."""
    original = message.value or b""
    if len(original) > MAX_DEAD_ORIGINAL_BYTES:
        reason = (
            f"{reason[: MAX_REASON_CHARS - 200]} (original cut to its first "
            f"{MAX_DEAD_ORIGINAL_BYTES:,} of {len(original):,} bytes)"
        )
        original = original[:MAX_DEAD_ORIGINAL_BYTES]
    return DeadLetter(
        reason=reason[:MAX_REASON_CHARS],
        stage=stage,
        original=base64.b64encode(original).decode(),
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        failed_at=now,
        post_id=post_id,
    )


def dead_letter_record(letter: DeadLetter) -> tuple[bytes, bytes | None, Headers]:
    """Value, key and headers of a dead letter on the dead-letter topic."""
    headers: list[tuple[str, bytes]] = [
        (HEADER_STAGE, letter.stage.encode()),
        (HEADER_REASON, letter.reason[:500].encode()),
        (HEADER_TOPIC, letter.topic.encode()),
    ]
    if letter.partition is not None:
        headers.append((HEADER_PARTITION, str(letter.partition).encode()))
    if letter.offset is not None:
        headers.append((HEADER_OFFSET, str(letter.offset).encode()))
    key = letter.post_id.encode() if letter.post_id else None
    return letter.model_dump_json().encode(), key, tuple(headers)

"""Answering the customer on the channel they wrote on, and keeping what was said.

A ``Replier`` per source sends the text (X and Reddit through their connectors' reply methods,
handed in by the composition root: ``connectors/replying.py``); sources without an outbound
channel (webhooks, tests) are record-only; the demo's, replays' and the twcs set's sources answer
into the "demo outbox", which records the reply as sent (``via``) so the demo behaves like the
product without reaching anyone. Either way the reply is written to the store, where customer
context and KPIs read it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal, Protocol

from pydantic import Field

from pipeline.errors import TriageError
from pipeline.records import AwareDatetime, QueueItem, Record
from pipeline.store.interface import Store

REPLY = "reply"
RECORD_ONLY_SOURCES = ("webhook", "test")
# "sample" is the bundled demo posts' source, "twitter" a twcs.csv replay's
DEMO_SOURCES = ("demo", "sample", "replay", "twcs", "twitter")
DEMO_OUTBOX = "demo outbox"


class Replier(Protocol):
    def reply(self, item: QueueItem, text: str) -> str | None:
        """Send ``text`` in answer to the item's post; the new message's id, None if not sent."""


class RecordOnly:
    """For sources with no way back to the customer: the reply is only recorded."""

    via: str | None = None

    def reply(self, item: QueueItem, text: str) -> str | None:
        return None


class DemoOutbox(RecordOnly):
    """Sources that only exist in demos and replays: the reply counts as sent, into an outbox
    that is the record itself, so every channel the demo shows can be answered."""

    via = DEMO_OUTBOX

    def reply(self, item: QueueItem, text: str) -> str | None:
        return f"outbox:{uuid.uuid4().hex}"


class ConnectorReplier:
    """A connector's ``reply(native id, text)``: X answers a tweet id, Reddit a fullname."""

    def __init__(self, send: Callable[[str, str], str]) -> None:
        self.send = send

    def reply(self, item: QueueItem, text: str) -> str | None:
        return self.send(item.id.split(":", 1)[1], text)


class ReplyRecord(Record):
    id: str
    item_id: str
    author_id: str
    source: str
    text: str = Field(min_length=1, max_length=10_000)
    by: str
    at: AwareDatetime
    purpose: str
    delivery: Literal["sent", "recorded"]
    external_id: str | None = None
    via: str | None = None
    """Where a reply went that no customer sees ("demo outbox"); None for a real channel."""


class NoReplier(TriageError):
    status = 422


class Repliers:
    def __init__(self, store: Store, by_source: Mapping[str, Replier] | None = None) -> None:
        self.store = store
        self.by_source: dict[str, Replier] = {s: RecordOnly() for s in RECORD_ONLY_SOURCES}
        self.by_source.update({s: DemoOutbox() for s in DEMO_SOURCES})
        self.by_source.update(by_source or {})

    @classmethod
    def through(cls, store: Store, senders: Mapping[str, Callable[[str, str], str]]) -> Repliers:
        """Reply through connectors' ``reply(native id, text)`` methods, by source."""
        return cls(store, {source: ConnectorReplier(send) for source, send in senders.items()})

    def send(
        self, item: QueueItem, text: str, by: str, at: datetime, purpose: str
    ) -> ReplyRecord:
        replier = self.by_source.get(item.source)
        if replier is None:
            raise NoReplier(f"no way to reply on {item.source!r}: configure its connector")
        external = replier.reply(item, text)
        record = ReplyRecord(
            id=uuid.uuid4().hex,
            item_id=item.id,
            author_id=item.author_id,
            source=item.source,
            text=text,
            by=by,
            at=at,
            purpose=purpose,
            delivery="recorded" if external is None else "sent",
            external_id=external,
            via=replier.via if isinstance(replier, RecordOnly) else None,
        )
        self.store.put_record(REPLY, record.id, record.model_dump(mode="json"))
        return record

    def for_authors(self, author_ids: list[str]) -> list[ReplyRecord]:
        found = self.store.find_records(REPLY, {"author_id": author_ids})
        return [ReplyRecord.model_validate(d) for d in found]

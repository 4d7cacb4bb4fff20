"""Answering the customer on the channel they wrote on, and keeping what was said.

A ``Replier`` per source sends the text (X and Reddit through their connectors' reply methods);
sources without an outbound channel (the demo, replays, tests) are record-only. Either way the
reply is written to the store, where customer context and KPIs read it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import Field

from pipeline.bus import InProcessBus
from pipeline.errors import TriageError
from pipeline.records import AwareDatetime, QueueItem, Record
from pipeline.store import Store

if TYPE_CHECKING:
    from pipeline.settings import Settings

REPLY = "reply"
RECORD_ONLY_SOURCES = ("demo", "replay", "twcs", "webhook", "test")


class Replier(Protocol):
    def reply(self, item: QueueItem, text: str) -> str | None:
        """Send ``text`` in answer to the item's post; the new message's id, None if not sent."""


class RecordOnly:
    """For sources with no way back to the customer: the reply is only recorded."""

    def reply(self, item: QueueItem, text: str) -> str | None:
        return None


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


class NoReplier(TriageError):
    status = 422


class Repliers:
    def __init__(self, store: Store, by_source: Mapping[str, Replier] | None = None) -> None:
        self.store = store
        self.by_source: dict[str, Replier] = {s: RecordOnly() for s in RECORD_ONLY_SOURCES}
        self.by_source.update(by_source or {})

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
        )
        self.store.put_record(REPLY, record.id, record.model_dump(mode="json"))
        return record

    def for_authors(self, author_ids: list[str]) -> list[ReplyRecord]:
        found = self.store.find_records(REPLY, {"author_id": author_ids})
        return [ReplyRecord.model_validate(d) for d in found]


def repliers_from_settings(settings: Settings, store: Store) -> Repliers:
    """X and Reddit reply through their connectors when their credentials are configured."""
    by_source: dict[str, Replier] = {}
    keys = (
        settings.x_consumer_key,
        settings.x_consumer_secret,
        settings.x_access_token,
        settings.x_access_token_secret,
    )
    # The connectors are built only for their reply methods: nothing is read or produced.
    producer = InProcessBus().producer()
    if all(k is not None for k in keys):
        import tweepy

        from connectors.x import XConnector

        ck, cs, at, ats = (k.get_secret_value() for k in keys if k is not None)
        client = tweepy.Client(
            consumer_key=ck, consumer_secret=cs, access_token=at, access_token_secret=ats
        )
        x = XConnector(producer, client, query="replies", store=store)
        by_source["x"] = ConnectorReplier(x.reply)
    reddit_keys = (
        settings.reddit_client_id,
        settings.reddit_client_secret,
        settings.reddit_username,
        settings.reddit_password,
    )
    if all(k is not None for k in reddit_keys):
        import praw

        from connectors.reddit import RedditConnector

        cid, csec, user, pw = (k.get_secret_value() for k in reddit_keys if k is not None)
        reddit = praw.Reddit(
            client_id=cid,
            client_secret=csec,
            username=user,
            password=pw,
            user_agent=settings.reddit_user_agent,
        )
        by_source["reddit"] = ConnectorReplier(
            RedditConnector(producer, reddit, subreddits=[], store=store).reply
        )
    return Repliers(store, by_source)


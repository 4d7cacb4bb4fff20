"""Everything the queue knows about one customer, on one call, across sources.

A customer is an author (``<source>:<author id>``); an admin may link the same person's
identities on several sources, and the context then covers all of them: their earlier posts and
how each was triaged, the replies they got, and their open escalations.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pipeline.outbound.replies import ReplyRecord
from pipeline.queue.agent_queue import CUSTOMER, AgentQueue, UnknownItem
from pipeline.queue.escalation import EscalationRecord, Escalations
from pipeline.records import AuditEntry, QueueItem


class PostSummary(BaseModel):
    id: str
    source: str
    author_id: str
    created_at: Any
    text: str
    language: str
    topic: str
    urgency: str
    sentiment: str
    priority: float
    band: str
    reasons: list[str]
    model_versions: dict[str, str]
    url: str | None = None


class CustomerContext(BaseModel):
    author_id: str
    authors: list[str]
    profile: dict[str, Any] | None
    tier: str | None
    posts: list[PostSummary]
    items: list[QueueItem]
    replies: list[ReplyRecord]
    open_escalations: list[EscalationRecord]


def _summary(doc: dict[str, Any]) -> PostSummary:
    post = doc["post"]
    return PostSummary(
        id=doc["_id"],
        source=post["source"],
        author_id=doc["author_key"],
        created_at=doc["created_at"],
        text=doc["redacted_text"],
        language=doc["language"],
        topic=doc["topic"]["label"],
        urgency=doc["urgency"]["label"],
        sentiment=doc["sentiment"]["label"],
        priority=doc["priority"]["score"],
        band=doc["priority"]["band"],
        reasons=doc["priority"]["reasons"],
        model_versions=doc["model_versions"],
        url=post.get("url"),
    )


class Customers:
    def __init__(self, queue: AgentQueue, escalations: Escalations) -> None:
        self.queue = queue
        self.store = queue.store
        self.escalations = escalations

    def identities(self, author_id: str) -> list[str]:
        doc = self.store.get_record(CUSTOMER, author_id) or {}
        return sorted({author_id, *doc.get("links", [])})

    def link(self, author_id: str, other: str, by: str) -> list[str]:
        """Record that two authors are one person; each side lists every identity."""
        everyone = sorted({*self.identities(author_id), *self.identities(other)})
        for who in everyone:
            doc = self.store.get_record(CUSTOMER, who) or {"author_id": who, "tier": None}
            links = [a for a in everyone if a != who]
            self.store.put_record(CUSTOMER, who, {**doc, "author_id": who, "links": links})
        self.store.record_audit(
            [
                AuditEntry(
                    at=self.queue.clock(),
                    actor=by,
                    action="link_customer",
                    detail={"authors": everyone},
                )
            ]
        )
        return everyone

    def context(self, author_id: str, limit: int = 50) -> CustomerContext:
        authors = self.identities(author_id)
        profile = self.store.get_author(author_id)
        posts = self.store.author_posts(authors, limit)
        if profile is None and not posts:
            raise UnknownItem(f"no customer {author_id!r}")
        tiers = self.queue.tiers(authors)
        return CustomerContext(
            author_id=author_id,
            authors=authors,
            profile=_plain(profile),
            tier=tiers.get(author_id) or next((t for t in tiers.values() if t), None),
            posts=[_summary(p) for p in posts],
            items=self.store.author_items(authors),
            replies=self.queue.repliers.for_authors(authors),
            open_escalations=self.escalations.for_authors(authors, "open"),
        )

    def context_for_item(self, item_id: str, limit: int = 50) -> CustomerContext:
        item = self.store.get_item(item_id)
        if item is None:
            raise UnknownItem(f"no queue item {item_id!r}")
        return self.context(item.author_id, limit)


def _plain(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {k: v for k, v in doc.items() if k != "_id"} | {"id": doc["_id"]}

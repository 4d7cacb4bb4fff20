"""The store interface: what the worker, the queue and the dashboards read and write.

MongoDB (``pipeline.store.mongo``) in production and an embedded SQLite store
(``pipeline.store.embedded``) for the embedded default both implement it, and one contract suite
(tests/test_store_contract.py) runs against the embedded store and against a real MongoDB-wire
server. Every write is idempotent, keyed by the post id, so a batch written twice (a worker
killed before it committed its offsets) leaves exactly what writing it once would have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from pipeline.assist_records import OutboundReply
from pipeline.records import AuditEntry, Correction, QueueItem, TriagedPost, UserAccount

COLLECTIONS = ("posts", "queue", "authors", "trends", "escalations", "audit", "corrections")


@dataclass(frozen=True)
class QueueQuery:
    """One page of the agent console's queue: filters, a search and a window.

    ``overdue_before`` / ``due_after`` bound the post's creation per SLA band (an item is
    overdue when its post was created before its band's cutoff), so an SLA-state filter is a
    range on an indexed time, not a computation over every item."""

    statuses: tuple[str, ...] = ("open", "claimed")
    bands: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    search: str = ""
    created_before: Mapping[str, datetime] | None = None
    created_after: Mapping[str, datetime] | None = None
    offset: int = 0
    limit: int = 25


@dataclass(frozen=True)
class QueuePage:
    items: list[QueueItem]
    total: int


@dataclass(frozen=True)
class SavedCheckpoint:
    """A checkpoint as stored, with when it was last written (None where an older embedded
    store recorded no time)."""

    key: str
    value: str
    at: datetime | None


def prefix_end(prefix: str) -> str:
    """The least text greater than every text starting with ``prefix``: a prefix becomes a
    range on the key's index, which both stores use (a regex or LIKE may not be)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"


@dataclass(frozen=True)
class Lease:
    """A lease as it was just before a take: who held it (None: nobody ever had), until when,
    and what its holder recorded in it (the trend detector's leader: the last minute it closed)."""

    holder: str | None
    until: datetime | None
    state: dict[str, Any]


@dataclass(frozen=True)
class WriteResult:
    posts_new: int
    queued_new: int
    duplicates: int


class Store(Protocol):
    def ensure_schema(self) -> None:
        """Create collections and indexes; safe to call at every start."""

    def write_batch(self, triaged: Sequence[TriagedPost]) -> WriteResult:
        """Store posts, queue the non-spam ones, refresh authors: one bulk call per collection."""

    def get_post(self, post_id: str) -> dict[str, Any] | None: ...

    def get_author(self, author_id: str) -> dict[str, Any] | None:
        """The latest known profile of ``<source>:<native author id>``."""

    def post_ids(self) -> list[str]: ...

    def queue_ids(self) -> list[str]: ...

    def count(self, collection: str) -> int: ...

    def queue_depth(self) -> dict[str, int]:
        """Open items per priority band."""

    def list_queue(self, status: str = "open", limit: int = 50) -> list[QueueItem]:
        """Items in one state, most urgent first: what the agent console lists."""

    def queue_page(self, query: QueueQuery) -> QueuePage:
        """Items matching ``query``, most urgent first, with how many match in all: one
        filtered, sorted, windowed read and one count, never the whole queue."""

    def queue_between(self, since: datetime, until: datetime) -> list[QueueItem]:
        """Items whose post was created in ``[since, until)``, whatever their state: what the
        KPIs of a range are computed from (a range on an indexed time)."""

    def queue_mentioning(
        self,
        since: datetime,
        words: Sequence[str],
        topics: Sequence[str] = (),
        limit: int = 10_000,
    ) -> list[QueueItem]:
        """Items not resolved whose post was created at or after ``since`` and whose text holds
        one of ``words`` (in any case) or whose topic is one of ``topics``, newest post first
        (a long spike's newest items are the ones its incident lacks): a spike's posts from
        every worker, for its incident. A range on the indexed creation
        time (``created``), the words matched by the server within it."""

    def backlog(self, edges: Sequence[datetime]) -> dict[str, list[int]]:
        """Unresolved items per band, counted between consecutive ``edges`` of the post's
        creation (newest first, so bucket 0 is the youngest): grouped counts, no documents."""

    def author_handles(self, author_ids: Sequence[str]) -> dict[str, str]:
        """The handle of each of these authors that has one, in one read (a queue page's)."""

    def top_topics(self, limit: int = 5) -> list[tuple[str, int]]:
        """Most frequent topics among stored non-spam posts."""

    def claim_next(
        self,
        agent: str,
        lease_until: datetime,
        now: datetime,
        topics: Sequence[str] | None = None,
        languages: Sequence[str] | None = None,
        authors: Sequence[str] | None = None,
        exclude_authors: Sequence[str] | None = None,
    ) -> QueueItem | None:
        """Atomically take the highest-priority open (or lease-expired) item an agent may take;
        ``authors`` / ``exclude_authors`` narrow it for affinity routing."""

    def open_authors(
        self,
        now: datetime,
        topics: Sequence[str] | None = None,
        languages: Sequence[str] | None = None,
        limit: int = 20,
    ) -> list[str]:
        """The authors of the ``limit`` items a claim under this routing would take first (open,
        or held under a lease or snooze that ran out), most urgent first: affinity routing looks
        up only these customers, never every customer ever helped."""

    def agent_loads(self, now: datetime) -> dict[str, int]:
        """Items each agent holds under a live lease at ``now`` (agents holding none left out):
        the capacity check of every "next", so it must not read the whole queue."""

    def get_item(self, item_id: str) -> QueueItem | None: ...

    def get_items(self, item_ids: Sequence[str]) -> list[QueueItem]:
        """The items of these ids that exist, as they are now, in one read (a batch's)."""

    def update_item(self, item_id: str, version: int, changes: dict[str, Any]) -> QueueItem | None:
        """Apply ``changes`` if the item is still at ``version`` (then at ``version + 1``);
        None if someone changed it first. Every change of an item's state goes through here."""

    def record_audit(self, entries: Sequence[AuditEntry]) -> None: ...

    def get_checkpoint(self, key: str) -> str | None:
        """How far a connector has read a source (an X since_id, a Reddit fullname)."""

    def set_checkpoint(self, key: str, value: str) -> None:
        """Record progress; connectors call it only after their producer flushed."""

    def checkpoints_under(self, prefix: str) -> list[SavedCheckpoint]:
        """Every checkpoint whose key starts with ``prefix``, by key: the operator page lists
        the connectors a deployment has run from what they saved."""

    # ---- agent assist (pipeline/assist/assistant.py, pipeline/assist/automation.py)

    def resolved_since(self, since: datetime | None) -> list[QueueItem]:
        """Resolved items whose resolution is at or after ``since`` (all if None), oldest
        resolution first: the history the similar-cases index follows."""

    def audit_of_items(self, item_ids: Sequence[str]) -> list[AuditEntry]:
        """The audit entries of these items, oldest first."""

    def open_items_of_author(self, author_id: str) -> list[str]:
        """Ids of the author's queue items not resolved yet (open, claimed or snoozed)."""

    def record_outbound(self, reply: OutboundReply) -> None:
        """Store (or update, by id) a reply sent for a queue item."""

    def outbound_since(self, since: datetime) -> list[OutboundReply]:
        """Replies sent at or after ``since``, oldest first."""

    def add_correction(self, correction: Correction) -> None:
        """Keep an agent's relabel; insert-only, so corrections are a history, never edited."""

    def list_corrections(self) -> list[Correction]:
        """Every correction, oldest first: what retraining learns from."""

    def author_posts(self, author_ids: Sequence[str], limit: int = 50) -> list[dict[str, Any]]:
        """The authors' stored posts with their triage, newest first."""

    def author_items(self, author_ids: Sequence[str]) -> list[QueueItem]:
        """Every queue item of these authors, whatever its state."""

    def put_record(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        """Create or replace one small side record (an agent profile, a customer's tier)."""

    def add_record(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        """Insert unless ``key`` is there; True if this call inserted it. Atomic on every
        backend, so it doubles as a ledger (breaches recorded once, escalation quota tokens)."""

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def take_lease(
        self,
        name: str,
        holder: str,
        until: datetime,
        now: datetime,
        state: Mapping[str, Any] | None = None,
    ) -> Lease | None:
        """Take (or renew) the lease ``name`` for ``holder`` until ``until`` if nobody holds it,
        its holder's time ran out before ``now``, or ``holder`` holds it already: one atomic
        step on every backend, so of processes racing for it one wins. ``state`` (when given)
        replaces what the lease records. Returns the lease as it was before, or None when
        another holder's lease is live."""

    def delete_record(self, kind: str, key: str) -> bool:
        """Remove one record; True if there was one."""

    def find_records(
        self,
        kind: str,
        where: Mapping[str, Any] | None = None,
        limit: int = 10_000,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Records of one kind whose top-level fields equal ``where`` (a list means any of) and,
        with ``since``/``until``, whose aware ``at`` time lies in ``[since, until)``; oldest
        first. Times come back as ISO text or datetimes: read them through a model."""

    def posts_between(
        self, since: datetime, until: datetime, limit: int = 100_000
    ) -> list[dict[str, Any]]:
        """Stored posts created in ``[since, until)``, oldest first, without their raw payload:
        what the marketing dashboard charts. Times may come back as ISO text or datetimes."""

    def save_user(self, user: UserAccount) -> None:
        """Add a dashboard user, or replace the one of that name (a new password or roles)."""

    def get_user(self, name: str) -> UserAccount | None: ...

    def list_users(self) -> list[UserAccount]:
        """Every dashboard user, by name."""

    def close(self) -> None: ...


# The probability maps read back from a stored post: urgency's (re-scoring items queued before
# priority factors were kept) and sentiment's (the tone cue, automation's "not too negative").
# The other tasks keep label and confidence; their maps, and the stage timings, are on
# posts.triaged for whoever wants them, and were most of a stored post's 2.0 KB.
KEPT_PROBABILITIES = ("urgency", "sentiment")


def post_document(item: TriagedPost) -> dict[str, Any]:
    """The stored shape of a triaged post: flat keys that the indexes and reports use, and what
    agents, reports and retraining read (``KEPT_PROBABILITIES``)."""
    doc = item.model_dump(mode="python", exclude={"timings_ms"})
    for task in ("spam", "topic", "urgency", "sentiment", "emotion"):
        if task not in KEPT_PROBABILITIES and doc.get(task) is not None:
            doc[task].pop("probabilities", None)
    doc["post"]["id"] = item.id
    # Payloads from other systems may hold keys MongoDB refuses ("$x", "a.b"): keep them as text.
    doc["post"]["raw"] = orjson.dumps(item.post.raw, default=str).decode()
    doc["_id"] = item.id
    doc["author_key"] = author_key(item)
    doc["topic_label"] = item.topic.label
    doc["created_at"] = item.post.created_at
    return doc


def author_key(item: TriagedPost) -> str:
    return f"{item.post.source}:{item.post.author.id}"


def author_document(item: TriagedPost) -> dict[str, Any]:
    author = item.post.author
    return {
        "_id": author_key(item),
        "source": item.post.source,
        "native_id": author.id,
        "handle": author.handle,
        "name": author.name,
        "followers": author.followers,
        "verified": author.verified,
        "last_seen_at": item.post.created_at,
    }


def latest_authors(items: Sequence[TriagedPost]) -> list[dict[str, Any]]:
    """One document per author, from their most recent post in the batch."""
    latest: dict[str, TriagedPost] = {}
    for item in items:
        key = author_key(item)
        if key not in latest or item.post.created_at >= latest[key].post.created_at:
            latest[key] = item
    return [author_document(i) for i in latest.values()]

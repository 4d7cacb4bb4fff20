"""MongoDB (and any MongoDB-wire server: FerretDB 2 on DocumentDB in development) behind the
store interface, used as MongoDB: a claim is one atomic ``find_one_and_update`` on the index that
serves its filter and order, a change of state one conditional update on ``_id`` and version.

Writes are ``insert_many(ordered=False)`` keyed by post id: a post or queue item that is already
there raises a duplicate-key error for that document only, which is exactly the idempotence the
worker needs, in one bulk call per collection.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.cursor import Cursor
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from pipeline.assist_records import OutboundReply
from pipeline.errors import TransientError
from pipeline.records import AuditEntry, Correction, QueueItem, TriagedPost, UserAccount
from pipeline.store.interface import (
    Lease,
    QueuePage,
    QueueQuery,
    SavedCheckpoint,
    WriteResult,
    latest_authors,
    post_document,
    prefix_end,
)

DUPLICATE_KEY = 11000
# DocumentDB runs a sorted findAndModify as a PostgreSQL statement that locks the row it picks;
# two claims racing for the top rows can deadlock, and PostgreSQL aborts one of them, which is
# then safe to run again (seen under 50 agents over 2 API processes).
DEADLOCK_RETRIES = 8
# DocumentDB 0.108 cannot read a sort from an index (see ``ensure_schema``): a sorted claim
# reads every matching open item and sorts them, 27 ms on 10,000 open items. A claim therefore
# asks first for items at or above the priority this process's last claim under the same routing
# took, less these margins, and widens to the whole queue only when nothing is there. The first
# item of a narrowed query is still the true top (every item left out ranks below the bound),
# so the window decides only the cost: 4 ms a claim instead of 42 (docs/performance.md).
CLAIM_WINDOW_MARGINS = (1.0, 10.0)
# Documents every read asks for in its first reply (the server stops at 16 MB whatever this
# says; a read's ``limit`` caps it too). The default first batch is 101 documents, and a read
# left with a cursor open holds a PostgreSQL connection that FerretDB closes afterwards: a fresh
# DocumentDB backend costs more than the read (30 a second under claims, docs/performance.md).
ONE_REPLY = 100_000
# The order agents take items in; the claim index below is this order behind ``status``.
URGENT_FIRST = [("priority", DESCENDING), ("enqueued_at", ASCENDING)]
# Every hot query's index, by what it is for, so the explain test (tests/test_store_indexes.py)
# can say which one a plan must use.
QUEUE_INDEXES: dict[str, list[tuple[str, int]]] = {
    # claims, the console's queue page, the SLA sweep's reads by status, queue depth
    "claim": [("status", ASCENDING), *URGENT_FIRST],
    # Only ``claim`` holds ``status``: DocumentDB's indexes answer a filter on any field they
    # hold, in any position, and its planner drew claims to another index that held ``status``
    # (then sorted every open item).
    # leases that ran out, and each agent's live leases (the capacity check of every "next")
    "lease": [("lease_until", ASCENDING)],
    # snoozes that ended
    "snooze": [("snooze_until", ASCENDING)],
    # a customer's items (context, affinity routing, automation's "no other open item")
    "author": [("author_id", ASCENDING)],
    # resolved history for similar cases and KPIs
    "resolved": [("resolution.at", ASCENDING)],
    # the console's SLA-state filter, KPIs over a range and the backlog by age
    "created": [("post_created_at", ASCENDING)],
}


class MongoStore:
    def __init__(self, uri: str, database: str = "triage", timeout_ms: int = 5000) -> None:
        self._client: MongoClient[dict[str, Any]] = MongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms * 6, 30_000),
            retryWrites=False,
        )
        self._db = self._client[database]
        self.posts: Collection[dict[str, Any]] = self._db["posts"]
        self.queue: Collection[dict[str, Any]] = self._db["queue"]
        self.authors: Collection[dict[str, Any]] = self._db["authors"]
        self.audit: Collection[dict[str, Any]] = self._db["audit"]
        self._kinds: set[str] = set()  # record kinds whose collection has its indexes
        self._record_fields: dict[str, set[str]] = {}  # record fields indexed, by kind
        self._indexing = threading.Lock()
        # the priority the last claim under each routing took: where the next claim looks first
        self._claim_hints: dict[str, float] = {}
        # per routing: held while the first claim without a hint reads the whole queue, so that
        # the claims arriving with it wait for its hint instead of each sorting the queue too
        self._cold: dict[str, threading.Lock] = {}
        # per thread (one request at a time): the routing and ``now`` of its last read that
        # found no lease or snooze run out
        self._request = threading.local()

    def ensure_schema(self) -> None:
        with _transient("creating indexes"):
            self.posts.create_index([("author_key", ASCENDING), ("created_at", DESCENDING)])
            self.posts.create_index([("topic_label", ASCENDING)])
            self.posts.create_index([("created_at", ASCENDING)])
            # On MongoDB ``claim`` also gives the claim's order. DocumentDB 0.108 reads the
            # matching open items through it and sorts them: its ordered index kind
            # (``enableOrderedIndex`` with ``documentdb.enableIndexOrderbyPushdown``) served the
            # sort but failed claims that exclude authors once the table had statistics
            # ("operator is not a member of opfamily"), docs/performance.md.
            # MongoDB's own names ("author_id_1"): a database indexed by an earlier version
            # already has some of these, and the same keys under a new name would be refused.
            for keys in QUEUE_INDEXES.values():
                self.queue.create_index(keys)
            self.audit.create_index([("item_id", ASCENDING), ("at", ASCENDING)])
            for name in ("trends", "escalations"):
                self._db[name].create_index([("created_at", DESCENDING)])
            self._db["corrections"].create_index([("at", ASCENDING)])
            self._db["outbound"].create_index([("at", ASCENDING)])

    def write_batch(self, triaged: Sequence[TriagedPost]) -> WriteResult:
        if not triaged:
            return WriteResult(0, 0, 0)
        with _transient("writing a batch"):
            posts_new, dup_posts = _insert_new(self.posts, [post_document(t) for t in triaged])
            queue_docs = [_queue_document(t) for t in triaged if not t.is_spam]
            queued_new, _ = _insert_new(self.queue, queue_docs)
            # Insert-only: the newest profile is in the author's newest post anyway, and an
            # upsert per author would be a round trip each.
            _insert_new(self.authors, latest_authors(triaged))
        return WriteResult(posts_new, queued_new, len(dup_posts))

    def get_post(self, post_id: str) -> dict[str, Any] | None:
        with _transient("reading a post"):
            return self.posts.find_one({"_id": post_id})

    def get_author(self, author_id: str) -> dict[str, Any] | None:
        """The author record, with the profile (followers, handle) from their newest post."""
        with _transient("reading an author"):
            author = self.authors.find_one({"_id": author_id})
            if author is None:
                return None
            newest = self.posts.find_one(
                {"author_key": author_id},
                {"post.author": 1, "created_at": 1},
                sort=[("created_at", DESCENDING)],
            )
        if newest is not None:
            profile = newest["post"]["author"]
            author.update({k: profile[k] for k in ("handle", "name", "followers", "verified")})
            author["last_seen_at"] = newest["created_at"]
        return author

    def post_ids(self) -> list[str]:
        with _transient("listing posts"):
            return [d["_id"] for d in _find(self.posts, {}, {"_id": 1})]

    def queue_ids(self) -> list[str]:
        with _transient("listing the queue"):
            return [d["_id"] for d in _find(self.queue, {}, {"_id": 1})]

    def count(self, collection: str) -> int:
        with _transient(f"counting {collection}"):
            return self._db[collection].count_documents({})

    def queue_depth(self) -> dict[str, int]:
        with _transient("reading queue depth"):
            rows = self.queue.aggregate(
                [{"$match": {"status": "open"}}, {"$group": {"_id": "$band", "n": {"$sum": 1}}}]
            )
            return {r["_id"]: r["n"] for r in rows}

    def list_queue(self, status: str = "open", limit: int = 50) -> list[QueueItem]:
        with _transient("listing the queue"):
            docs = _find(self.queue, {"status": status}).sort(URGENT_FIRST).limit(limit)
            return [_queue_item(d) for d in docs]

    def queue_page(self, query: QueueQuery) -> QueuePage:
        with _transient("reading a queue page"):
            where = self._queue_where(query)
            total = self.queue.count_documents(where)
            docs = _find(self.queue, where).sort(URGENT_FIRST).skip(query.offset).limit(query.limit)
            return QueuePage([_queue_item(d) for d in docs], total)

    def _queue_where(self, query: QueueQuery) -> dict[str, Any]:
        """The filter of a queue page; a search also matches authors by handle."""
        where: list[dict[str, Any]] = []
        for field, values in (
            ("status", query.statuses),
            ("band", query.bands),
            ("topic", query.topics),
            ("language", query.languages),
            ("source", query.sources),
        ):
            if values:
                where.append({field: {"$in": list(values)}})
        if query.search:
            pattern = {"$regex": re.escape(query.search), "$options": "i"}
            handles = [a["_id"] for a in _find(self.authors, {"handle": pattern}, {"_id": 1})]
            where.append(
                {
                    "$or": [
                        {"text": pattern},
                        {"author_id": pattern},
                        {"_id": pattern},
                        {"author_id": {"$in": handles}},
                    ]
                }
            )
        for bounds, op in ((query.created_before, "$lt"), (query.created_after, "$gte")):
            if bounds is not None:
                where.append(
                    {
                        "$or": [
                            {"sla_band": band, "post_created_at": {op: at}}
                            for band, at in bounds.items()
                        ]
                        or [{"_id": {"$in": []}}]
                    }
                )
        return {"$and": where} if where else {}

    def queue_between(self, since: datetime, until: datetime) -> list[QueueItem]:
        with _transient("reading the queue of a range"):
            where = {"post_created_at": {"$gte": since, "$lt": until}}
            return [_queue_item(d) for d in _find(self.queue, where)]

    def queue_mentioning(
        self,
        since: datetime,
        words: Sequence[str],
        topics: Sequence[str] = (),
        limit: int = 10_000,
    ) -> list[QueueItem]:
        either: list[dict[str, Any]] = []
        if words:
            pattern = "|".join(re.escape(w) for w in words)
            either.append({"text": {"$regex": pattern, "$options": "i"}})
        if topics:
            either.append({"topic": {"$in": list(topics)}})
        if not either:
            return []
        # resolved items are left out here, not in the filter: DocumentDB would serve a
        # condition on ``status`` from the claim index instead of the time's
        where = {"post_created_at": {"$gte": since}, "$or": either}
        with _transient("reading a spike's items"):
            docs = _find(self.queue, where).sort("post_created_at", DESCENDING).limit(limit)
            items = [_queue_item(d) for d in docs]
        return [i for i in items if i.status != "resolved"]

    def backlog(self, edges: Sequence[datetime]) -> dict[str, list[int]]:
        where = {"status": {"$ne": "resolved"}, "post_created_at": {"$lt": edges[0]}}
        with _transient("counting the backlog"):
            docs = list(_find(self.queue, where, {"band": 1, "post_created_at": 1}))
        counts: dict[str, list[int]] = {}
        for doc in docs:
            created = doc["post_created_at"]
            for i, (newer, older) in enumerate(pairwise(edges)):
                if older <= created < newer:
                    counts.setdefault(doc["band"], [0] * (len(edges) - 1))[i] += 1
                    break
        return counts

    def author_handles(self, author_ids: Sequence[str]) -> dict[str, str]:
        if not author_ids:
            return {}
        with _transient("reading handles"):
            docs = _find(self.authors, {"_id": {"$in": list(author_ids)}}, {"handle": 1})
            return {d["_id"]: d["handle"] for d in docs if d.get("handle")}

    def top_topics(self, limit: int = 5) -> list[tuple[str, int]]:
        with _transient("reading topics"):
            rows = self.posts.aggregate(
                [
                    {"$match": {"is_spam": False}},
                    {"$group": {"_id": "$topic_label", "n": {"$sum": 1}}},
                    {"$sort": {"n": -1, "_id": 1}},
                    {"$limit": limit},
                ]
            )
            return [(r["_id"], r["n"]) for r in rows]

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
        """Take the most urgent item the agent may take: open, or held under a lease (or a
        snooze) that ran out.

        Usually there is no run-out lease, and the claim is one atomic ``find_one_and_update``
        on the ``claim`` index (status, then the order agents take items in). Run-out leases
        and snoozes are found through their own indexes first; when one of them is more urgent
        than the top open item, it is taken by ``_id`` on the condition that it is still as it
        was read, and a lost race looks again.
        """
        skills = _routing(topics, languages)
        routing = dict(skills)
        if authors is not None or exclude_authors:
            routing["author_id"] = {
                **({"$in": list(authors)} if authors is not None else {}),
                **({"$nin": list(exclude_authors)} if exclude_authors else {}),
            }
        changes = {
            "status": "claimed",
            "agent": agent,
            "lease_until": lease_until,
            "snooze_until": None,
        }
        update = {"$set": changes, "$inc": {"version": 1}}
        open_items = {"status": "open", **routing}
        # The window is keyed by the agent's skills only (a bounded set of keys), and skipped
        # for a claim among given customers: their few items come through the author index.
        hint = None if authors is not None else _hint(skills)

        def take(query: dict[str, Any]) -> list[dict[str, Any]]:
            doc = self._find_one_and_update(query, update, sort=URGENT_FIRST)
            return [] if doc is None else [doc]

        with _transient("claiming"):
            while True:
                stale = (
                    self._first_of(_ran_out(now, routing))
                    if self._any_ran_out(now, skills)
                    else []
                )
                if not stale:
                    taken = self._window(hint, open_items, take, learn=True)
                    return _queue_item(taken[0]) if taken else None
                top = self._window(hint, open_items, self._first_of)
                best = min([*stale, *top], key=_urgent_first)
                # Still in the state it was read in, or someone else took it first.
                doc = self._find_one_and_update(
                    {"_id": best["_id"], "version": best.get("version", 0)}, update
                )
                if doc is not None:
                    return _queue_item(doc)

    def open_authors(
        self,
        now: datetime,
        topics: Sequence[str] | None = None,
        languages: Sequence[str] | None = None,
        limit: int = 20,
    ) -> list[str]:
        routing = _routing(topics, languages)
        fields = {"priority": 1, "enqueued_at": 1, "author_id": 1}

        def read(query: dict[str, Any]) -> list[dict[str, Any]]:
            return list(_find(self.queue, query, fields).sort(URGENT_FIRST).limit(limit))

        with _transient("reading the customers a claim would reach"):
            found = read(_ran_out(now, routing)) if self._any_ran_out(now, routing) else []
            found += self._window(_hint(routing), {"status": "open", **routing}, read, limit)
        return [d["author_id"] for d in sorted(found, key=_urgent_first)[:limit]]

    def _any_ran_out(self, now: datetime, skills: dict[str, Any]) -> bool:
        """Whether a lease or snooze under these skills may have run out before ``now``.

        A claim request reads run-out items up to three times (a claim among the agent's own
        customers, the look at whose customers come next, the claim itself), each time with the
        request's one ``now``, in one thread. Nearly always there is none, and then there is
        none for that ``now`` afterwards either: a claim, extension or snooze sets a time after
        its own now. So one read under the skills alone answers the thread's later looks with
        the same ``now`` (were another process's clock behind, its item would wait for the next
        request, never be taken twice: every take is atomic)."""
        key = (_hint(skills), now)
        if getattr(self._request, "none_ran_out", None) == key:
            return False
        if self._first(_ran_out(now, skills)) is None:
            self._request.none_ran_out = key
            return False
        return True

    def _window(
        self,
        hint: str | None,
        open_items: dict[str, Any],
        read: Callable[[dict[str, Any]], list[dict[str, Any]]],
        wanted: int = 1,
        learn: bool = False,
    ) -> list[dict[str, Any]]:
        """``read`` (a read or a claim) of the most urgent open items, in a window of priorities
        just below where the last claim under this routing took one (``CLAIM_WINDOW_MARGINS``),
        widened while it holds fewer than ``wanted``, up to the whole queue. ``learn``: a claim,
        whose item's priority becomes the routing's hint.

        Without a hint (a fresh process) a claim reads the whole queue; the claims that arrive
        meanwhile under the same routing wait for it (50 agents' first claims each sorting
        10,000 items) and then use its hint. If it learnt none (nothing to take), they go on
        at once, side by side: agents polling an empty queue never queue behind each other."""
        if hint is None or hint in self._claim_hints or not learn:
            return self._read_window(hint, open_items, read, wanted, learn)
        cold = self._cold.setdefault(hint, threading.Lock())
        if cold.acquire(blocking=False):  # this claim reads the whole queue for the others
            try:
                return self._read_window(hint, open_items, read, wanted, learn)
            finally:
                cold.release()
        with cold:  # another claim is reading the whole queue: wait for its hint
            pass
        return self._read_window(hint, open_items, read, wanted, learn)

    def _read_window(
        self,
        hint: str | None,
        open_items: dict[str, Any],
        read: Callable[[dict[str, Any]], list[dict[str, Any]]],
        wanted: int,
        learn: bool = False,
    ) -> list[dict[str, Any]]:
        last = None if hint is None else self._claim_hints.get(hint)
        bounds: list[float | None] = (
            [last - margin for margin in CLAIM_WINDOW_MARGINS] if (last is not None) else []
        )
        docs: list[dict[str, Any]] = []
        for bound in [*bounds, None]:
            query = open_items if bound is None else {**open_items, "priority": {"$gte": bound}}
            docs = read(query)
            if len(docs) >= wanted:
                break
        if learn and hint is not None and docs:
            self._claim_hints[hint] = docs[0]["priority"]
        return docs

    def _find_one_and_update(
        self, query: dict[str, Any], update: dict[str, Any], **options: Any
    ) -> dict[str, Any] | None:
        """One atomic change of one queue document (the new one), run again after a deadlock."""
        for _ in range(DEADLOCK_RETRIES - 1):
            try:
                return self.queue.find_one_and_update(
                    query, update, return_document=ReturnDocument.AFTER, **options
                )
            except OperationFailure as exc:
                if "deadlock detected" not in str(exc):
                    raise
        return self.queue.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER, **options
        )

    def _first_of(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        first = self._first(query)
        return [] if first is None else [first]

    def _first(self, query: dict[str, Any]) -> dict[str, Any] | None:
        """The most urgent item matching ``query``: its id, version and order only."""
        return self.queue.find_one(
            query, {"priority": 1, "enqueued_at": 1, "version": 1}, sort=URGENT_FIRST
        )

    def agent_loads(self, now: datetime) -> dict[str, int]:
        with _transient("reading agents' loads"):
            rows = self.queue.aggregate(
                [
                    {"$match": {"status": "claimed", "lease_until": {"$gte": now}}},
                    {"$group": {"_id": "$agent", "n": {"$sum": 1}}},
                ]
            )
            return {r["_id"]: r["n"] for r in rows if r["_id"] is not None}

    def get_item(self, item_id: str) -> QueueItem | None:
        with _transient("reading a queue item"):
            doc = self.queue.find_one({"_id": item_id})
        return None if doc is None else _queue_item(doc)

    def get_items(self, item_ids: Sequence[str]) -> list[QueueItem]:
        if not item_ids:
            return []
        with _transient("reading queue items"):
            return [_queue_item(d) for d in _find(self.queue, {"_id": {"$in": list(item_ids)}})]

    def update_item(self, item_id: str, version: int, changes: dict[str, Any]) -> QueueItem | None:
        with _transient("changing a queue item"):
            doc = self._find_one_and_update(
                {"_id": item_id, "version": version}, {"$set": changes, "$inc": {"version": 1}}
            )
        return None if doc is None else _queue_item(doc)

    def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        if entries:
            with _transient("writing audit"):
                self.audit.insert_many([e.model_dump(mode="python") for e in entries])

    def get_checkpoint(self, key: str) -> str | None:
        with _transient("reading a checkpoint"):
            doc = self._db["checkpoints"].find_one({"_id": key})
        return None if doc is None else str(doc["value"])

    def set_checkpoint(self, key: str, value: str) -> None:
        # One connector owns a key, so this update never contends with another writer.
        with _transient("writing a checkpoint"):
            self._db["checkpoints"].update_one(
                {"_id": key}, {"$set": {"value": value, "at": datetime.now(UTC)}}, upsert=True
            )

    def checkpoints_under(self, prefix: str) -> list[SavedCheckpoint]:
        query = {"_id": {"$gte": prefix, "$lt": prefix_end(prefix)}}  # a range on _id's index
        with _transient("reading checkpoints"):
            docs = list(_find(self._db["checkpoints"], query).sort("_id", ASCENDING))
        return [SavedCheckpoint(str(d["_id"]), str(d["value"]), d.get("at")) for d in docs]

    def resolved_since(self, since: datetime | None) -> list[QueueItem]:
        query = {"resolution.at": {"$gte": since} if since is not None else {"$ne": None}}
        with _transient("reading resolved items"):
            docs = _find(self.queue, query).sort([("resolution.at", ASCENDING), ("_id", ASCENDING)])
            return [_queue_item(d) for d in docs]

    def audit_of_items(self, item_ids: Sequence[str]) -> list[AuditEntry]:
        if not item_ids:
            return []
        with _transient("reading audit"):
            docs = list(
                _find(self.audit, {"item_id": {"$in": list(item_ids)}}, {"_id": 0}).sort(
                    [("at", ASCENDING), ("_id", ASCENDING)]
                )
            )
        return [AuditEntry.model_validate(d) for d in docs]

    def open_items_of_author(self, author_id: str) -> list[str]:
        with _transient("reading an author's items"):
            docs = _find(
                self.queue, {"author_id": author_id, "status": {"$ne": "resolved"}}, {"_id": 1}
            )
            return [d["_id"] for d in docs]

    def record_outbound(self, reply: OutboundReply) -> None:
        doc = reply.model_dump(mode="python")
        with _transient("recording a reply"):
            self._db["outbound"].replace_one({"_id": reply.id}, {**doc, "_id": reply.id}, True)

    def outbound_since(self, since: datetime) -> list[OutboundReply]:
        with _transient("reading replies"):
            docs = _find(self._db["outbound"], {"at": {"$gte": since}}, {"_id": 0})
            docs = docs.sort([("at", ASCENDING), ("id", ASCENDING)])
            return [OutboundReply.model_validate(d) for d in docs]

    def add_correction(self, correction: Correction) -> None:
        with _transient("writing a correction"):
            self._db["corrections"].insert_one(correction.model_dump(mode="python"))

    def list_corrections(self) -> list[Correction]:
        with _transient("reading corrections"):
            docs = _find(self._db["corrections"], {}).sort([("at", ASCENDING), ("_id", ASCENDING)])
            return [
                Correction.model_validate({k: v for k, v in d.items() if k != "_id"}) for d in docs
            ]

    def author_posts(self, author_ids: Sequence[str], limit: int = 50) -> list[dict[str, Any]]:
        if not author_ids:
            return []
        with _transient("reading an author's posts"):
            return list(
                _find(self.posts, {"author_key": {"$in": list(author_ids)}})
                .sort([("created_at", DESCENDING)])
                .limit(limit)
            )

    def author_items(self, author_ids: Sequence[str]) -> list[QueueItem]:
        if not author_ids:
            return []
        with _transient("reading an author's queue items"):
            docs = _find(self.queue, {"author_id": {"$in": list(author_ids)}})
            items = [_queue_item(d) for d in docs]
        return sorted(items, key=lambda i: (i.enqueued_at, i.id))

    def records(self, kind: str) -> Collection[dict[str, Any]]:
        """The collection of one record kind: each kind's reads stay within its own documents
        and indexes (a minute's trend counts never sit in the automation settings' way)."""
        if not kind.isidentifier():
            raise ValueError(f"bad record kind {kind!r}")
        collection = self._db[f"records.{kind}"]
        if kind not in self._kinds:
            # once per kind and process: 50 agents' first requests at once each creating the
            # same indexes took 44 ms a call on DocumentDB
            with self._indexing, _transient(f"indexing {kind} records"):
                if kind not in self._kinds:
                    collection.create_index([("seq", ASCENDING)])
                    collection.create_index([("doc.at", ASCENDING)])
                    self._kinds.add(kind)
        return collection

    def put_record(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        records = self.records(kind)
        with _transient(f"writing a {kind} record"):
            records.update_one(
                {"_id": key}, {"$set": {"doc": doc}, "$setOnInsert": {"seq": _seq()}}, upsert=True
            )

    def add_record(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        records = self.records(kind)
        with _transient(f"adding a {kind} record"):
            try:
                records.insert_one({"_id": key, "doc": doc, "seq": _seq()})
            except DuplicateKeyError:
                return False
        return True

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        records = self.records(kind)
        with _transient(f"reading a {kind} record"):
            found = records.find_one({"_id": key})
        return None if found is None else dict(found["doc"])

    def take_lease(
        self,
        name: str,
        holder: str,
        until: datetime,
        now: datetime,
        state: Mapping[str, Any] | None = None,
    ) -> Lease | None:
        """One ``find_one_and_update`` on ``_id`` with upsert: a live lease of another holder
        does not match, so the upsert's insert meets the existing ``_id`` and is refused (a
        duplicate key: MongoDB's error 11000, FerretDB's PostgreSQL unique violation)."""
        changes: dict[str, Any] = {"holder": holder, "until": until}
        if state is not None:
            changes["state"] = dict(state)
        with _transient(f"taking lease {name}"):
            try:
                before = self._db["leases"].find_one_and_update(
                    {"_id": name, "$or": [{"holder": holder}, {"until": {"$lt": now}}]},
                    {"$set": changes},
                    upsert=True,
                    return_document=ReturnDocument.BEFORE,
                )
            except DuplicateKeyError:
                return None
            except OperationFailure as exc:
                # FerretDB reports the refused insert as PostgreSQL's unique violation
                if "duplicate key" not in str(exc):
                    raise
                return None
        if before is None:
            return Lease(None, None, {})
        return Lease(before.get("holder"), before.get("until"), dict(before.get("state") or {}))

    def delete_record(self, kind: str, key: str) -> bool:
        records = self.records(kind)
        with _transient(f"deleting a {kind} record"):
            return records.delete_one({"_id": key}).deleted_count > 0

    def find_records(
        self,
        kind: str,
        where: Mapping[str, Any] | None = None,
        limit: int = 10_000,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {}
        if since is not None or until is not None:
            query["doc.at"] = {
                **({"$gte": since} if since is not None else {}),
                **({"$lt": until} if until is not None else {}),
            }
        for field, value in (where or {}).items():
            if not field.isidentifier():
                raise ValueError(f"bad record field {field!r}")
            is_many = isinstance(value, list | tuple | set)
            query[f"doc.{field}"] = {"$in": list(value)} if is_many else value
        records = self.records(kind)
        with _transient(f"reading {kind} records"):
            # A field records are looked up by gets its index on first use (an agent's
            # customers, the owners of a claim's candidates): no read scans a kind's records.
            for field in (where or {}).keys() - self._record_fields.get(kind, set()):
                with self._indexing:
                    records.create_index([(f"doc.{field}", ASCENDING)])
                    self._record_fields.setdefault(kind, set()).add(field)
            found = _find(records, query).sort([("seq", ASCENDING)]).limit(limit)
            return [dict(d["doc"]) for d in found]

    def posts_between(
        self, since: datetime, until: datetime, limit: int = 100_000
    ) -> list[dict[str, Any]]:
        with _transient("reading posts by time"):
            return list(
                _find(self.posts, {"created_at": {"$gte": since, "$lt": until}}, {"post.raw": 0})
                .sort("created_at", ASCENDING)
                .limit(limit)
            )

    def save_user(self, user: UserAccount) -> None:
        # Users are added by hand, one at a time: this replace never contends with another writer.
        with _transient("saving a user"):
            doc = {**user.model_dump(mode="python"), "_id": user.name}
            self._db["users"].replace_one({"_id": user.name}, doc, upsert=True)

    def get_user(self, name: str) -> UserAccount | None:
        with _transient("reading a user"):
            doc = self._db["users"].find_one({"_id": name}, {"_id": 0})
        return None if doc is None else UserAccount.model_validate(doc)

    def list_users(self) -> list[UserAccount]:
        with _transient("listing users"):
            docs = list(_find(self._db["users"], {}, {"_id": 0}).sort("name", ASCENDING))
        return [UserAccount.model_validate(d) for d in docs]

    def close(self) -> None:
        self._client.close()


def _seq() -> int:
    """Insertion order for side records (nanoseconds; MongoDB promises no natural order)."""
    return time.time_ns()


def _urgent_first(doc: Mapping[str, Any]) -> tuple[float, datetime]:
    return (-doc["priority"], doc["enqueued_at"])


def _find(collection: Collection[dict[str, Any]], *args: Any) -> Cursor[dict[str, Any]]:
    """``collection.find`` answered in one reply (``ONE_REPLY``)."""
    return collection.find(*args, batch_size=ONE_REPLY)


def _queue_item(doc: dict[str, Any]) -> QueueItem:
    fields = {k: v for k, v in doc.items() if k != "_id"}
    return QueueItem.model_validate({**fields, "id": doc["_id"]})


def _queue_document(item: TriagedPost) -> dict[str, Any]:
    doc = QueueItem.from_triaged(item).model_dump(mode="python")
    doc["_id"] = doc.pop("id")
    return doc


def _insert_new(
    collection: Collection[dict[str, Any]], docs: list[dict[str, Any]]
) -> tuple[int, set[str]]:
    """Insert the documents whose ids are not there yet; return how many and the ids that were."""
    if not docs:
        return 0, set()
    try:
        return len(collection.insert_many(docs, ordered=False).inserted_ids), set()
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        if others:
            raise TransientError(f"bulk write to {collection.name} failed: {others[0]}") from exc
        dups = {docs[e["index"]]["_id"] for e in errors}
        return exc.details.get("nInserted", len(docs) - len(dups)), dups


@contextmanager
def _transient(doing: str) -> Iterator[None]:
    """Turn a lost connection into TransientError, which the worker retries, then replays."""
    try:
        yield
    except (ServerSelectionTimeoutError, ConnectionFailure) as exc:
        raise TransientError(f"MongoDB unreachable while {doing}") from exc
    except PyMongoError as exc:
        raise TransientError(f"MongoDB failed while {doing}: {exc}") from exc


def _routing(topics: Sequence[str] | None, languages: Sequence[str] | None) -> dict[str, Any]:
    """The filter of an agent's skills: any topic or language where none is given."""
    routing: dict[str, Any] = {}
    if topics:
        routing["topic"] = {"$in": list(topics)}
    if languages:
        routing["language"] = {"$in": list(languages)}
    return routing


def _hint(skills: dict[str, Any]) -> str:
    """The key of the claim window's hint: one per set of skills, never per customer list."""
    return repr(sorted(skills.items()))


def _ran_out(now: datetime, routing: dict[str, Any]) -> dict[str, Any]:
    """Items held under a lease, or put off by a snooze, that ran out before ``now``: claimable
    again. One query, each branch read through its own index (``lease``, ``snooze``)."""
    return {
        "$or": [
            {"status": "claimed", "lease_until": {"$lt": now}},
            {"status": "snoozed", "snooze_until": {"$lt": now}},
        ],
        **routing,
    }

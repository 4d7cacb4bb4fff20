"""MongoDB (and any MongoDB-wire server such as FerretDB) behind the store interface.

Writes are ``insert_many(ordered=False)`` keyed by post id: a post or queue item that is already
there raises a duplicate-key error for that document only, which is exactly the idempotence the
worker needs, and which every MongoDB-wire server executes as one fast bulk call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from pipeline.assist_records import OutboundReply
from pipeline.errors import TransientError
from pipeline.records import AuditEntry, Correction, QueueItem, TriagedPost, UserAccount
from pipeline.store import (
    TREND_KINDS,
    WriteResult,
    latest_authors,
    post_document,
)

DUPLICATE_KEY = 11000
CLAIM_CANDIDATES = 8
CLAIM_ROUNDS = 50


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
        self.claims: Collection[dict[str, Any]] = self._db["claims"]
        self.records: Collection[dict[str, Any]] = self._db["records"]

    def ensure_schema(self) -> None:
        with _transient("creating indexes"):
            self.posts.create_index([("author_key", ASCENDING), ("created_at", DESCENDING)])
            self.posts.create_index([("topic_label", ASCENDING)])
            self.posts.create_index([("created_at", ASCENDING)])
            self.queue.create_index([("status", ASCENDING), ("priority", DESCENDING)])
            self.queue.create_index([("author_id", ASCENDING)])
            self.claims.create_index([("item_id", ASCENDING)])
            self.audit.create_index([("item_id", ASCENDING), ("at", ASCENDING)])
            self.records.create_index([("kind", ASCENDING), ("seq", ASCENDING)])
            for name in ("trends", "escalations"):
                self._db[name].create_index([("created_at", DESCENDING)])
            self._db["corrections"].create_index([("at", ASCENDING)])
            for kind in TREND_KINDS:
                self._db[kind].create_index([("at", ASCENDING)])
            self._db["outbound"].create_index([("at", ASCENDING)])

    def write_batch(self, triaged: Sequence[TriagedPost]) -> WriteResult:
        if not triaged:
            return WriteResult(0, 0, 0)
        with _transient("writing a batch"):
            posts_new, dup_posts = _insert_new(self.posts, [post_document(t) for t in triaged])
            queue_docs = [_queue_document(t) for t in triaged if not t.is_spam]
            queued_new, _ = _insert_new(self.queue, queue_docs)
            # Insert-only: concurrent updates from several workers can wedge FerretDB's SQLite
            # backend, and the newest profile is in the author's newest post anyway.
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
            return [d["_id"] for d in self.posts.find({}, {"_id": 1})]

    def queue_ids(self) -> list[str]:
        with _transient("listing the queue"):
            return [d["_id"] for d in self.queue.find({}, {"_id": 1})]

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
            docs = list(
                self.queue.find({"status": status})
                .sort([("priority", DESCENDING), ("enqueued_at", ASCENDING)])
                .limit(limit)
            )
        return [_queue_item(d) for d in docs]

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
        """Claim through a ledger of version tokens, ``<item id>#<version>``.

        On MongoDB a single ``find_one_and_update`` would do, but not every MongoDB-wire server
        makes it atomic (FerretDB v1 runs it as a find and then an update, and the contract test
        caught two agents holding one item). Inserting a document under a unique ``_id`` is atomic
        everywhere, so the agent whose token insert succeeds owns the claim; the others move on to
        the next candidate. Every other change of an item's state goes through the same ledger.
        """
        query: dict[str, Any] = {
            "$or": [
                {"status": "open"},
                {"status": "claimed", "lease_until": {"$lt": now}},
                {"status": "snoozed", "snooze_until": {"$lt": now}},
            ]
        }
        if topics:
            query["topic"] = {"$in": list(topics)}
        if languages:
            query["language"] = {"$in": list(languages)}
        by_author: dict[str, Any] = {}
        if authors is not None:
            by_author["$in"] = list(authors)
        if exclude_authors:
            by_author["$nin"] = list(exclude_authors)
        if by_author:
            query["author_id"] = by_author
        order = [("priority", DESCENDING), ("enqueued_at", ASCENDING)]
        with _transient("claiming"):
            for _ in range(CLAIM_ROUNDS):
                candidates = list(
                    self.queue.find(query, {"version": 1}, sort=order, limit=CLAIM_CANDIDATES)
                )
                if not candidates:
                    return None
                for candidate in candidates:
                    item = self._take(
                        candidate["_id"],
                        candidate.get("version", 0),
                        query,
                        agent,
                        lease_until,
                        now,
                    )
                    if item is not None:
                        return item
        raise TransientError(f"claim for {agent} lost {CLAIM_ROUNDS} rounds of contention")

    def _take(
        self,
        item_id: str,
        seq: int,
        query: dict[str, Any],
        agent: str,
        lease_until: datetime,
        now: datetime,
    ) -> QueueItem | None:
        changes = {
            "status": "claimed",
            "agent": agent,
            "lease_until": lease_until,
            "snooze_until": None,
        }
        return self._compare_and_set(item_id, seq, changes, query)

    def get_item(self, item_id: str) -> QueueItem | None:
        with _transient("reading a queue item"):
            doc = self.queue.find_one({"_id": item_id})
        return None if doc is None else _queue_item(doc)

    def update_item(self, item_id: str, version: int, changes: dict[str, Any]) -> QueueItem | None:
        with _transient("changing a queue item"):
            return self._compare_and_set(item_id, version, changes, {})

    def _compare_and_set(
        self, item_id: str, version: int, changes: dict[str, Any], query: dict[str, Any]
    ) -> QueueItem | None:
        """Move an item from ``version`` to ``version + 1``, or return None if it has moved on.

        The token ``<item id>#<version + 1>`` is inserted first: only one writer can insert it,
        so only one change per version ever happens, on any MongoDB-wire server.
        """
        try:
            self.claims.insert_one(
                {"_id": f"{item_id}#{version + 1}", "item_id": item_id, "changes": changes}
            )
        except DuplicateKeyError:
            return None  # somebody else changed this version first
        doc = self.queue.find_one_and_update(
            {**query, "_id": item_id, "version": version},
            {"$set": {**changes, "version": version + 1}},
            return_document=ReturnDocument.AFTER,
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

    def resolved_since(self, since: datetime | None) -> list[QueueItem]:
        query: dict[str, Any] = {"status": "resolved"}
        if since is not None:
            query["resolution.at"] = {"$gte": since}
        with _transient("reading resolved items"):
            docs = list(self.queue.find(query).sort([("resolution.at", ASCENDING), ("_id", 1)]))
        return [_queue_item(d) for d in docs]

    def audit_of_items(self, item_ids: Sequence[str]) -> list[AuditEntry]:
        if not item_ids:
            return []
        with _transient("reading audit"):
            docs = list(
                self.audit.find({"item_id": {"$in": list(item_ids)}}, {"_id": 0}).sort(
                    [("at", ASCENDING), ("_id", ASCENDING)]
                )
            )
        return [AuditEntry.model_validate(d) for d in docs]

    def open_items_of_author(self, author_id: str) -> list[str]:
        with _transient("reading an author's items"):
            docs = self.queue.find(
                {"author_id": author_id, "status": {"$ne": "resolved"}}, {"_id": 1}
            )
            return [d["_id"] for d in docs]

    def record_outbound(self, reply: OutboundReply) -> None:
        doc = reply.model_dump(mode="python")
        with _transient("recording a reply"):
            self._db["outbound"].replace_one({"_id": reply.id}, {**doc, "_id": reply.id}, True)

    def outbound_since(self, since: datetime) -> list[OutboundReply]:
        with _transient("reading replies"):
            docs = self._db["outbound"].find({"at": {"$gte": since}}, {"_id": 0})
            docs = docs.sort([("at", ASCENDING), ("id", ASCENDING)])
            return [OutboundReply.model_validate(d) for d in docs]

    def add_correction(self, correction: Correction) -> None:
        with _transient("writing a correction"):
            self._db["corrections"].insert_one(correction.model_dump(mode="python"))

    def list_corrections(self) -> list[Correction]:
        with _transient("reading corrections"):
            docs = self._db["corrections"].find({}).sort([("at", ASCENDING), ("_id", ASCENDING)])
            return [
                Correction.model_validate({k: v for k, v in d.items() if k != "_id"}) for d in docs
            ]

    def author_posts(self, author_ids: Sequence[str], limit: int = 50) -> list[dict[str, Any]]:
        if not author_ids:
            return []
        with _transient("reading an author's posts"):
            return list(
                self.posts.find({"author_key": {"$in": list(author_ids)}})
                .sort([("created_at", DESCENDING)])
                .limit(limit)
            )

    def author_items(self, author_ids: Sequence[str]) -> list[QueueItem]:
        if not author_ids:
            return []
        with _transient("reading an author's queue items"):
            docs = list(
                self.queue.find({"author_id": {"$in": list(author_ids)}}).sort(
                    [("enqueued_at", ASCENDING)]
                )
            )
        return [_queue_item(d) for d in docs]

    def put_record(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        with _transient(f"writing a {kind} record"):
            self.records.update_one(
                {"_id": f"{kind}/{key}"},
                {"$set": {"kind": kind, "doc": doc}, "$setOnInsert": {"seq": _seq()}},
                upsert=True,
            )

    def add_record(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        with _transient(f"adding a {kind} record"):
            try:
                self.records.insert_one(
                    {"_id": f"{kind}/{key}", "kind": kind, "doc": doc, "seq": _seq()}
                )
            except DuplicateKeyError:
                return False
        return True

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        with _transient(f"reading a {kind} record"):
            found = self.records.find_one({"_id": f"{kind}/{key}"})
        return None if found is None else dict(found["doc"])

    def delete_record(self, kind: str, key: str) -> bool:
        with _transient(f"deleting a {kind} record"):
            return self.records.delete_one({"_id": f"{kind}/{key}"}).deleted_count > 0

    def find_records(
        self, kind: str, where: Mapping[str, Any] | None = None, limit: int = 10_000
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"kind": kind}
        for field, value in (where or {}).items():
            if not field.isidentifier():
                raise ValueError(f"bad record field {field!r}")
            is_many = isinstance(value, list | tuple | set)
            query[f"doc.{field}"] = {"$in": list(value)} if is_many else value
        with _transient(f"reading {kind} records"):
            found = self.records.find(query).sort([("seq", ASCENDING)]).limit(limit)
            return [dict(d["doc"]) for d in found]

    def posts_between(
        self, since: datetime, until: datetime, limit: int = 100_000
    ) -> list[dict[str, Any]]:
        with _transient("reading posts by time"):
            return list(
                self.posts.find(
                    {"created_at": {"$gte": since, "$lt": until}}, {"post.raw": 0}
                )
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
            docs = list(self._db["users"].find({}, {"_id": 0}).sort("name", ASCENDING))
        return [UserAccount.model_validate(d) for d in docs]
    def put_trend_docs(self, kind: str, docs: Sequence[dict[str, Any]]) -> None:
        """Each writer owns its documents' ids (a worker its buckets, a trend its record), so
        these replaces never contend with another writer on FerretDB."""
        if kind not in TREND_KINDS:
            raise ValueError(f"unknown trend document kind {kind!r}")
        # One replace per document: FerretDB v1 answers a bulk upsert without the "nModified"
        # that pymongo's bulk_write requires. The detector writes a document or two a minute.
        with _transient(f"writing {kind}"):
            for d in docs:
                self._db[kind].replace_one({"_id": d["_id"]}, d, upsert=True)

    def find_trend_docs(
        self,
        kind: str,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        if kind not in TREND_KINDS:
            raise ValueError(f"unknown trend document kind {kind!r}")
        query: dict[str, Any] = {}
        if since is not None or until is not None:
            query["at"] = {
                **({"$gte": since} if since is not None else {}),
                **({"$lt": until} if until is not None else {}),
            }
        if status is not None:
            query["status"] = status
        with _transient(f"reading {kind}"):
            return list(self._db[kind].find(query).sort([("at", ASCENDING), ("_id", ASCENDING)]))

    def close(self) -> None:
        self._client.close()


def _seq() -> int:
    """Insertion order for side records (nanoseconds; FerretDB has no natural order)."""
    return time.time_ns()


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

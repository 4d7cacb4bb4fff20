"""MongoDB (and any MongoDB-wire server such as FerretDB) behind the store interface.

Writes are ``insert_many(ordered=False)`` keyed by post id: a post or queue item that is already
there raises a duplicate-key error for that document only, which is exactly the idempotence the
worker needs, and which every MongoDB-wire server executes as one fast bulk call.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient
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
from pipeline.store.claim_index import ClaimIndex
from pipeline.store.group_insert import GroupInsert
from pipeline.store.interface import (
    QueuePage,
    QueueQuery,
    WriteResult,
    latest_authors,
    post_document,
)

DUPLICATE_KEY = 11000
LEAP_MAX = 63  # after lost races, a claim tries at most this many items further down
FOLD_BY_ID = 500  # fold up to this many items with an $in on the ledger, more with one read
READ_BATCH = 200  # documents a reply: decoding a reply holds the GIL, and claims wait for it
INDEX_REFRESH_S = 5.0  # at least; a re-read that took t seconds waits 5 t
STOP_WAIT_S = 10.0  # the longest a close waits for the background catch-up's write
COMPACT_IDLE_S = 0.5  # queue documents catch up with the ledger after this much quiet
LEDGER_KEEP_S = 1800.0  # a token folded into its queue document is deleted after this long
DELETE_BY_ID = 500  # ledger tokens deleted per call
UNRESOLVED = {"status": {"$ne": "resolved"}}  # resolved is final: such documents stay so


class MongoStore:
    def __init__(
        self,
        uri: str,
        database: str = "triage",
        timeout_ms: int = 5000,
        ledger_keep_s: float = LEDGER_KEEP_S,
    ) -> None:
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
        self._kinds: set[str] = set()  # record kinds whose collection has its indexes
        self._index = ClaimIndex()
        self._index_lock = threading.RLock()
        self._index_read = threading.Condition(self._index_lock)
        self._index_loaded_at: float | None = None
        self._index_cost_s = 0.0
        self._refreshing = False
        # A stale index entry is safe while the token it would collide with is kept: entries
        # not known current for a sixth of the ledger's keep time are re-read before use.
        self._index_trust_s = ledger_keep_s / 6
        self._compactor = Compactor(self.queue, self.claims, ledger_keep_s)
        self._tokens = GroupInsert(self.claims)
        self._audits = GroupInsert(self.audit)

    def ensure_schema(self) -> None:
        with _transient("creating indexes"):
            self.posts.create_index([("author_key", ASCENDING), ("created_at", DESCENDING)])
            self.posts.create_index([("topic_label", ASCENDING)])
            self.posts.create_index([("created_at", ASCENDING)])
            self.queue.create_index([("status", ASCENDING), ("priority", DESCENDING)])
            self.queue.create_index([("author_id", ASCENDING)])
            self.queue.create_index([("post_created_at", ASCENDING)])
            self.queue.create_index([("band", ASCENDING), ("topic", ASCENDING)])
            self.claims.create_index([("item_id", ASCENDING)])
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
            queued_new, known = _insert_new(self.queue, queue_docs)
            # Insert-only: concurrent updates from several workers can wedge FerretDB's SQLite
            # backend, and the newest profile is in the author's newest post anyway.
            _insert_new(self.authors, latest_authors(triaged))
        if self._index_loaded_at is not None:
            self._index.merge(_queue_item(d) for d in queue_docs if d["_id"] not in known)
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
            items = self._unresolved()
        return dict(Counter(i.band for i in items if i.status == "open"))

    def list_queue(self, status: str = "open", limit: int = 50) -> list[QueueItem]:
        with _transient("listing the queue"):
            items = self._folded({}) if status == "resolved" else self._unresolved()
        found = [i for i in items if i.status == status]
        found.sort(key=lambda i: (-i.priority, i.enqueued_at))
        return found[:limit]

    def queue_page(self, query: QueueQuery) -> QueuePage:
        with _transient("reading a queue page"):
            where = self._queue_where(query)
            total = self.queue.count_documents(where)
            docs = list(
                self.queue.find(where)
                .sort([("priority", DESCENDING), ("enqueued_at", ASCENDING)])
                .skip(query.offset)
                .limit(query.limit)
            )
        # Read back through get_items, so each item is as current as a read by id.
        current = {i.id: i for i in self.get_items([d["_id"] for d in docs])}
        return QueuePage([current.get(d["_id"], _queue_item(d)) for d in docs], total)

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
            handles = [a["_id"] for a in self.authors.find({"handle": pattern}, {"_id": 1})]
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
            ids = [d["_id"] for d in self.queue.find(where, {"_id": 1})]
        return self.get_items(ids)  # as current as a read by id

    def backlog(self, edges: Sequence[datetime]) -> dict[str, list[int]]:
        """Counted from the unresolved items read back by id (``get_items``), so a change made
        a moment ago counts as it is now, not as its queue document last caught up."""
        where = {"status": {"$ne": "resolved"}, "post_created_at": {"$lt": edges[0]}}
        with _transient("counting the backlog"):
            ids = [d["_id"] for d in self.queue.find(where, {"_id": 1})]
        counts: dict[str, list[int]] = {}
        for item in self.get_items(ids):
            if item.status == "resolved":
                continue
            for i, (newer, older) in enumerate(pairwise(edges)):
                if older <= item.post_created_at < newer:
                    counts.setdefault(item.band, [0] * (len(edges) - 1))[i] += 1
                    break
        return counts

    def author_handles(self, author_ids: Sequence[str]) -> dict[str, str]:
        if not author_ids:
            return {}
        with _transient("reading handles"):
            docs = self.authors.find({"_id": {"$in": list(author_ids)}}, {"handle": 1})
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
        """Take the most urgent claimable item from the in-memory index, through the ledger.

        On MongoDB a single ``find_one_and_update`` would do, but FerretDB v1 runs it as a find
        and then an update (not atomically), and its SQLite backend scans the whole collection
        for a sorted find and for every update. Inserting a document under a unique ``_id`` is
        atomic and cheap everywhere, so the agent whose token insert succeeds owns the claim.
        """
        self._load_index()
        changes = {"status": "claimed", "agent": agent, "lease_until": lease_until,
                   "snooze_until": None}
        reread, lost = False, 0
        while True:  # each lost race drops an item from the index, so this ends
            known_since = time.monotonic() - self._index_trust_s
            # After a lost race, further down: another process is taking the items just below
            # the one lost, and trying them one by one behind it, this process lost every race
            # (one load-test run: 0 of 10,000 items for one of two processes).
            candidate, stale = self._index.pick(
                now, topics, languages, authors, exclude_authors, known_since,
                skip=min((1 << min(lost, 16)) - 1, LEAP_MAX),
            )
            if candidate is None:
                # Nothing here: items another process queued may not have reached this index
                # yet, or entries were too old to trust; read them now, unless it was read a
                # moment ago (or, but for old entries, is being read now).
                if reread or not self._load_index(wait=True, join=stale):
                    return None
                reread = True
                continue
            taken: QueueItem | None = candidate  # kept as it was if the insert fails
            try:
                with _transient("claiming"):
                    # None: another process changed it first; it leaves this index until the
                    # next re-read says what it is now
                    taken = self._commit(candidate, changes)
            finally:
                self._index.settle(candidate.id, taken)
            if taken is not None:
                return taken
            lost += 1

    def agent_loads(self, now: datetime) -> dict[str, int]:
        """From the claim index: exact for this process's own changes, and for other processes'
        as of the index's last re-read (seconds old at most while claims are made)."""
        self._load_index()
        return self._index.loads(now)

    def get_item(self, item_id: str) -> QueueItem | None:
        with _transient("reading a queue item"):
            return self._current(item_id)

    def get_items(self, item_ids: Sequence[str]) -> list[QueueItem]:
        if not item_ids:
            return []
        with _transient("reading queue items"):
            return self._folded({"_id": {"$in": list(item_ids)}})

    def update_item(self, item_id: str, version: int, changes: dict[str, Any]) -> QueueItem | None:
        with _transient("changing a queue item"):
            item = self._current(item_id)
            if item is None or item.version != version:
                return None
            updated = self._commit(item, changes)
        if updated is not None:
            self._index.settle(item_id, updated)
        return updated

    def _commit(self, item: QueueItem, changes: dict[str, Any]) -> QueueItem | None:
        """Move ``item`` to its next version, or return None if someone did first.

        The ledger token ``<item id>#<version + 1>`` is the change: only one writer can insert
        it, on any MongoDB-wire server. The queue document catches up later (``_compact``);
        readers apply the tokens it has not caught up with yet.
        """
        version = item.version + 1
        token = {"_id": f"{item.id}#{version}", "item_id": item.id, "version": version,
                 "changes": changes}
        if not self._tokens.insert([token])[0]:
            return None
        self._compactor.add(item.id, version, changes)
        return QueueItem.model_validate({**item.model_dump(), **changes, "version": version})

    def _current(self, item_id: str) -> QueueItem | None:
        """The queue document with the ledger tokens it has not caught up with applied."""
        doc = self.queue.find_one({"_id": item_id})
        if doc is None:
            return None
        version = doc.get("version", 0)
        while (token := self.claims.find_one({"_id": f"{item_id}#{version + 1}"})) is not None:
            version += 1
            doc.update({**token["changes"], "version": version})
        return _queue_item(doc)

    def _folded(self, query: dict[str, Any]) -> list[QueueItem]:
        """Queue documents matching ``query`` as they are now (see ``_current``)."""
        docs = list(self.queue.find(query))
        tokens = self._ledger([d["_id"] for d in docs])
        return [_queue_item(_apply(doc, tokens.get(doc["_id"], ()))) for doc in docs]

    def _ledger(self, ids: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
        """Ledger tokens by item, of the items ``ids`` (every item if None)."""
        # One scan of the ledger either way on FerretDB; on MongoDB $in uses the item_id index.
        where = {"item_id": {"$in": ids}} if ids is not None and len(ids) <= FOLD_BY_ID else {}
        tokens: dict[str, list[dict[str, Any]]] = {}
        projection = {"item_id": 1, "version": 1, "changes": 1}
        for token in self.claims.find(where, projection, batch_size=READ_BATCH):
            tokens.setdefault(token["item_id"], []).append(token)
        return tokens

    def _unresolved(self) -> list[QueueItem]:
        """Every item not resolved yet; resolved is final, so a resolved document stays so."""
        return [i for i in self._folded(UNRESOLVED) if i.status != "resolved"]

    def _load_index(self, wait: bool = False, join: bool = False) -> bool:
        """Fill the claim index once, then re-read it now and then for the changes other
        processes make (new items from workers, releases elsewhere): in the background, or with
        ``wait`` right now. Re-reads are spaced by five times what the last one took (at least
        ``INDEX_REFRESH_S``, or a second with ``wait``; with ``join`` too, it waits for a re-read
        under way). True if this call read it or waited for it."""
        with self._index_lock:
            if self._index_loaded_at is None:  # every claim waits for the first read
                self._refresh_index()
                # What is alive now lives as long as the process (the index, the app): out of
                # the collector's full passes, which stopped every claiming thread for 200 ms.
                gc.freeze()
                return True
            if self._refreshing:
                if wait and join:
                    self._index_read.wait_for(lambda: not self._refreshing)
                return wait and join
            spacing = max(1.0 if wait else INDEX_REFRESH_S, 5 * self._index_cost_s)
            if time.monotonic() < self._index_loaded_at + spacing:
                return False
            self._refreshing = True
        if wait:
            self._refresh_index()
            return True
        threading.Thread(target=self._refresh_quietly, name="claim-index", daemon=True).start()
        return False

    def _refresh_quietly(self) -> None:
        with suppress(TransientError):  # the next claim tries again
            self._refresh_index()

    def _refresh_index(self) -> None:
        """Re-read the unresolved items, whole only where the index is behind.

        Once the index is loaded, Python decodes only each item's version and status, and whole
        documents only for the items other processes added or changed: decoding all 10,000 items
        of a queue every few seconds held the GIL and set off full collections, which stalled
        claims for 60-130 ms. The ledger is read after the queue, as it changes fastest: read
        first, a process started a moment after another tried every item the other had just
        taken, and lost every race."""
        started = time.monotonic()
        try:
            with _transient("loading the queue"):
                loaded = self._index_loaded_at is not None
                slim = {"version": 1, "status": 1} if loaded else None
                listed = list(self.queue.find(UNRESOLVED, slim, batch_size=READ_BATCH))
                tokens = self._ledger()
                # After the reads: what this process changed meanwhile is ahead of them, not behind
                known = self._index.versions()
                current = [d for d in (_apply(d, tokens.get(d["_id"], ())) for d in listed)
                           if d["status"] != "resolved"]
                unchanged = {d["_id"]: d.get("version", 0) for d in current
                             if known.get(d["_id"], -1) >= d.get("version", 0)}
                behind = [d for d in current if d["_id"] not in unchanged]
                if slim is not None and behind:
                    behind = self._whole([d["_id"] for d in behind], tokens)
                self._index.replace([_queue_item(d) for d in behind], unchanged, started)
        finally:
            with self._index_lock:
                self._index_loaded_at = time.monotonic()
                self._index_cost_s = self._index_loaded_at - started
                self._refreshing = False
                self._index_read.notify_all()

    def _whole(
        self, ids: Sequence[str], tokens: Mapping[str, list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """The unresolved documents of ``ids``, with ``tokens`` applied."""
        wanted = set(ids)
        query = {"_id": {"$in": list(ids)}} if len(ids) <= FOLD_BY_ID else UNRESOLVED
        docs = (_apply(d, tokens.get(d["_id"], ()))
                for d in self.queue.find(query, batch_size=READ_BATCH) if d["_id"] in wanted)
        return [d for d in docs if d["status"] != "resolved"]

    def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        if entries:
            with _transient("writing audit"):
                self._audits.insert([e.model_dump(mode="python") for e in entries])

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
        query: dict[str, Any] = {"status": {"$ne": "resolved"}}
        if since is not None:  # resolved before ``since`` in the document: resolved for good
            query = {"$or": [query, {"resolution.at": {"$gte": since}}]}
        with _transient("reading resolved items"):
            items = self._folded(query if since is not None else {})
        done = [
            (i.resolution.at, i.id, i) for i in items
            if i.resolution is not None and (since is None or i.resolution.at >= since)
        ]
        return [i for _, _, i in sorted(done, key=lambda d: d[:2])]

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
            items = self._folded({"author_id": author_id, "status": {"$ne": "resolved"}})
        return [i.id for i in items if i.status != "resolved"]

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
            items = self._folded({"author_id": {"$in": list(author_ids)}})
        return sorted(items, key=lambda i: (i.enqueued_at, i.id))

    def records(self, kind: str) -> Collection[dict[str, Any]]:
        """The collection of one record kind. One per kind, because FerretDB v1 scans the whole
        collection for a lookup by ``_id``: a minute's trend counts must not slow the read of
        the automation settings."""
        if not kind.isidentifier():
            raise ValueError(f"bad record kind {kind!r}")
        collection = self._db[f"records.{kind}"]
        if kind not in self._kinds:
            with _transient(f"indexing {kind} records"):
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
            found = records.find(query).sort([("seq", ASCENDING)]).limit(limit)
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
    def close(self) -> None:
        """Stop the background work and wait for it: a read or write still running while its
        database is dropped can crash FerretDB v1 (SIGBUS in SQLite's write-ahead log)."""
        self._compactor.stop()
        with self._index_lock:
            self._index_read.wait_for(lambda: not self._refreshing, timeout=STOP_WAIT_S)
        self._client.close()


class Compactor:
    """Brings queue documents up to their ledger tokens, in the background and only when the
    store has been quiet for ``COMPACT_IDLE_S``: on FerretDB v1 an update by ``_id`` scans the
    whole collection under SQLite's write lock, which would stall every claim behind it.
    Documents that never catch up (the process ended first) are still read right, through the
    ledger; catching up keeps those reads short and the status index useful on MongoDB.

    A token folded into its document is deleted ``keep_s`` later, so that the ledger holds
    recent changes only (on FerretDB every read of it decodes all of it). Not at once: a writer
    that read the item before the fold would insert that token's ``_id`` again and win. The
    claim index re-reads entries older than a sixth of ``keep_s`` before proposing them."""

    def __init__(
        self, queue: Collection[dict[str, Any]], ledger: Collection[dict[str, Any]], keep_s: float
    ) -> None:
        self._queue = queue
        self._ledger = ledger
        self._keep_s = keep_s
        self._pending: deque[tuple[str, int, dict[str, Any]]] = deque()
        self._folded: deque[tuple[float, str]] = deque()  # (when, token id), oldest first
        self._last_add = 0.0
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def add(self, item_id: str, version: int, changes: dict[str, Any]) -> None:
        with self._lock:
            self._pending.append((item_id, version, changes))
            self._last_add = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="compactor", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Stop, and wait for a write under way: a write landing after its database was
        dropped recreates the collection, and FerretDB v1 can crash (SIGBUS) in that race."""
        self._stopped.set()
        self._wake.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=STOP_WAIT_S)

    def _run(self) -> None:
        job: tuple[str, int, dict[str, Any]] | None = None
        try:
            while not self._stopped.is_set():
                self._wake.wait(self._until_due())
                quiet = time.monotonic() - self._last_add
                if quiet < COMPACT_IDLE_S:
                    self._stopped.wait(COMPACT_IDLE_S - quiet)
                    continue
                with self._lock:
                    job = self._pending.popleft() if self._pending else None
                    if job is None:
                        self._wake.clear()
                if job is not None:
                    item_id, version, changes = job
                    self._queue.update_one(
                        {"_id": item_id}, {"$set": {**changes, "version": version}}
                    )
                    self._folded.append((time.monotonic(), f"{item_id}#{version}"))
                    job = None
                elif self._until_due() == 0:
                    self._delete_due()
        except PyMongoError:
            with self._lock:  # the ledger still holds the changes; readers apply them
                if job is not None:  # folded in order, so the next thread starts with it
                    self._pending.appendleft(job)
                self._thread = None  # the next change starts a new thread

    def _until_due(self) -> float | None:
        """Seconds until the oldest folded token may go; None if there is none."""
        if not self._folded:
            return None
        return max(0.0, self._folded[0][0] + self._keep_s - time.monotonic())

    def _delete_due(self) -> None:
        due: list[str] = []
        while self._folded and len(due) < DELETE_BY_ID and self._until_due() == 0:
            due.append(self._folded.popleft()[1])
        self._ledger.delete_many({"_id": {"$in": due}})

def _seq() -> int:
    """Insertion order for side records (nanoseconds; FerretDB has no natural order)."""
    return time.time_ns()


def _apply(doc: dict[str, Any], tokens: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``doc`` with the tokens newer than its version applied, in order."""
    version = doc.get("version", 0)
    for token in sorted(tokens, key=lambda t: t["version"]):
        if token["version"] > version:
            doc.update({**token["changes"], "version": token["version"]})
            version = token["version"]
    return doc


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

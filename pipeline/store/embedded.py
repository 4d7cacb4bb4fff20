"""The embedded store: one SQLite file, for the demo and for a single machine without MongoDB.

It keeps the same documents as MongoDB (as JSON) next to the few columns that queries filter and
sort on. Claims are a single ``UPDATE ... RETURNING`` statement, which SQLite runs under its write
lock: the embedded equivalent of MongoDB's atomic ``find_one_and_update``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson

from pipeline.assist_records import OutboundReply
from pipeline.errors import TransientError
from pipeline.records import AuditEntry, Correction, QueueItem, TriagedPost, UserAccount
from pipeline.store.interface import (
    COLLECTIONS,
    Lease,
    QueuePage,
    QueueQuery,
    SavedCheckpoint,
    WriteResult,
    latest_authors,
    post_document,
    prefix_end,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    id TEXT PRIMARY KEY, author_key TEXT NOT NULL, topic TEXT NOT NULL, is_spam INTEGER NOT NULL,
    created_at TEXT NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS posts_author ON posts (author_key, created_at);
CREATE TABLE IF NOT EXISTS queue (
    id TEXT PRIMARY KEY, priority REAL NOT NULL, band TEXT NOT NULL, status TEXT NOT NULL,
    agent TEXT, lease_until TEXT, snooze_until TEXT, version INTEGER NOT NULL DEFAULT 0,
    topic TEXT NOT NULL, language TEXT NOT NULL, author_id TEXT NOT NULL,
    enqueued_at TEXT NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS queue_order ON queue (status, priority DESC, enqueued_at);
CREATE TABLE IF NOT EXISTS authors (id TEXT PRIMARY KEY, last_seen_at TEXT, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS trends (id TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS escalations (id TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (id TEXT PRIMARY KEY, value TEXT NOT NULL, at TEXT);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, item_id TEXT, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS audit_item ON audit (item_id);
CREATE TABLE IF NOT EXISTS outbound (id TEXT PRIMARY KEY, at TEXT NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS outbound_at ON outbound (at);
CREATE TABLE IF NOT EXISTS corrections (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, item_id TEXT NOT NULL,
    doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS queue_author ON queue (author_id);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, key TEXT NOT NULL, doc BLOB NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS posts_created ON posts (created_at);
CREATE INDEX IF NOT EXISTS queue_created
    ON queue (julianday(json_extract(doc, '$.post_created_at')));
CREATE INDEX IF NOT EXISTS records_at ON records (kind, json_extract(doc, '$.at'));
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, until TEXT NOT NULL, state BLOB);
"""
CREATED = "julianday(json_extract(doc, '$.post_created_at'))"  # indexed (queue_created)
SLA_BAND = "coalesce(json_extract(doc, '$.sla_band'), band)"


def _dumps(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, default=str)


def _record(doc: dict[str, Any]) -> bytes:
    """A record's ``at`` as fixed-width UTC text, so that a time range is a text comparison."""
    at = doc.get("at")
    return _dumps({**doc, "at": _iso(at)} if isinstance(at, datetime) else doc)


def _iso(value: datetime) -> str:
    """Fixed-width UTC text, so that SQLite's text comparison orders times correctly."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EmbeddedStore:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise TransientError(f"cannot open the embedded store at {path}: {exc}") from exc

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                raise TransientError(f"embedded store: {exc}") from exc

    def ensure_schema(self) -> None:
        with self._lock:
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(checkpoints)")}
            if "at" not in columns:  # a store made before checkpoints kept their time
                self._db.execute("ALTER TABLE checkpoints ADD COLUMN at TEXT")

    def write_batch(self, triaged: Sequence[TriagedPost]) -> WriteResult:
        if not triaged:
            return WriteResult(0, 0, 0)
        posts = [
            (
                t.id,
                f"{t.post.source}:{t.post.author.id}",
                t.topic.label,
                int(t.is_spam),
                _iso(t.post.created_at),
                _dumps(post_document(t)),
            )
            for t in triaged
        ]
        queue = []
        for t in triaged:
            if t.is_spam:
                continue
            q = QueueItem.from_triaged(t)
            queue.append(
                (
                    q.id,
                    q.priority,
                    q.band,
                    q.status,
                    q.topic,
                    q.language,
                    q.author_id,
                    _iso(q.enqueued_at),
                    _dumps(q.model_dump(mode="json")),
                )
            )
        authors = [(a["_id"], _iso(a["last_seen_at"]), _dumps(a)) for a in latest_authors(triaged)]
        with self._lock:
            try:
                with self._db:
                    before = self._db.total_changes
                    self._db.executemany("INSERT OR IGNORE INTO posts VALUES (?,?,?,?,?,?)", posts)
                    posts_new = self._db.total_changes - before
                    before = self._db.total_changes
                    self._db.executemany(
                        "INSERT OR IGNORE INTO queue (id, priority, band, status, topic, language,"
                        " author_id, enqueued_at, doc) VALUES (?,?,?,?,?,?,?,?,?)",
                        queue,
                    )
                    queued_new = self._db.total_changes - before
                    self._db.executemany(
                        "INSERT INTO authors VALUES (?,?,?) ON CONFLICT(id) DO UPDATE SET"
                        " last_seen_at=excluded.last_seen_at, doc=excluded.doc"
                        " WHERE excluded.last_seen_at >= authors.last_seen_at",
                        authors,
                    )
            except sqlite3.OperationalError as exc:
                raise TransientError(f"embedded store: {exc}") from exc
        return WriteResult(posts_new, queued_new, len(posts) - posts_new)

    def get_post(self, post_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT doc FROM posts WHERE id = ?", (post_id,))
        return orjson.loads(rows[0][0]) if rows else None

    def delete_record(self, kind: str, key: str) -> bool:
        with self._lock, self._db:
            cursor = self._db.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))
            return cursor.rowcount > 0

    def get_author(self, author_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT doc FROM authors WHERE id = ?", (author_id,))
        return orjson.loads(rows[0][0]) if rows else None

    def post_ids(self) -> list[str]:
        return [r[0] for r in self._run("SELECT id FROM posts")]

    def queue_ids(self) -> list[str]:
        return [r[0] for r in self._run("SELECT id FROM queue")]

    def count(self, collection: str) -> int:
        if collection not in COLLECTIONS:
            raise ValueError(f"unknown collection {collection!r}")
        return int(self._run(f"SELECT COUNT(*) FROM {collection}")[0][0])

    def queue_depth(self) -> dict[str, int]:
        rows = self._run("SELECT band, COUNT(*) FROM queue WHERE status = 'open' GROUP BY band")
        return {band: n for band, n in rows}

    def list_queue(self, status: str = "open", limit: int = 50) -> list[QueueItem]:
        rows = self._run(
            "SELECT doc FROM queue WHERE status = ? ORDER BY priority DESC, enqueued_at LIMIT ?",
            (status, limit),
        )
        return [QueueItem.model_validate_json(r[0]) for r in rows]

    def queue_page(self, query: QueueQuery) -> QueuePage:
        clauses, params = _queue_where(query)
        where = " AND ".join(clauses) or "1"
        total = int(self._run(f"SELECT COUNT(*) FROM queue WHERE {where}", params)[0][0])
        rows = self._run(
            f"SELECT doc FROM queue WHERE {where}"
            " ORDER BY priority DESC, enqueued_at LIMIT ? OFFSET ?",
            (*params, query.limit, query.offset),
        )
        return QueuePage([QueueItem.model_validate_json(r[0]) for r in rows], total)

    def queue_between(self, since: datetime, until: datetime) -> list[QueueItem]:
        rows = self._run(
            f"SELECT doc FROM queue WHERE {CREATED} >= julianday(?) AND {CREATED} < julianday(?)",
            (_iso(since), _iso(until)),
        )
        return [QueueItem.model_validate_json(r[0]) for r in rows]

    def queue_mentioning(
        self,
        since: datetime,
        words: Sequence[str],
        topics: Sequence[str] = (),
        limit: int = 10_000,
    ) -> list[QueueItem]:
        either = ["instr(lower(json_extract(doc, '$.text')), ?) > 0"] * len(words)
        if topics:
            either.append(f"topic IN ({','.join('?' * len(topics))})")
        if not either:
            return []
        rows = self._run(
            f"SELECT doc FROM queue WHERE {CREATED} >= julianday(?) AND status != 'resolved'"
            f" AND ({' OR '.join(either)}) ORDER BY {CREATED} DESC LIMIT ?",
            (_iso(since), *(w.lower() for w in words), *topics, limit),
        )
        return [QueueItem.model_validate_json(r[0]) for r in rows]

    def backlog(self, edges: Sequence[datetime]) -> dict[str, list[int]]:
        counts: dict[str, list[int]] = {}
        for i, (newer, older) in enumerate(pairwise(edges)):
            rows = self._run(
                "SELECT band, COUNT(*) FROM queue WHERE status != 'resolved'"
                f" AND {CREATED} < julianday(?) AND {CREATED} >= julianday(?) GROUP BY band",
                (_iso(newer), _iso(older)),
            )
            for band, n in rows:
                counts.setdefault(band, [0] * (len(edges) - 1))[i] = n
        return counts

    def author_handles(self, author_ids: Sequence[str]) -> dict[str, str]:
        if not author_ids:
            return {}
        rows = self._run(
            "SELECT id, json_extract(doc, '$.handle') FROM authors"
            f" WHERE id IN ({','.join('?' * len(author_ids))})",
            tuple(author_ids),
        )
        return {i: h for i, h in rows if h}

    def top_topics(self, limit: int = 5) -> list[tuple[str, int]]:
        rows = self._run(
            "SELECT topic, COUNT(*) AS n FROM posts WHERE is_spam = 0"
            " GROUP BY topic ORDER BY n DESC, topic LIMIT ?",
            (limit,),
        )
        return [(t, n) for t, n in rows]

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
        where, params = _claimable(now, topics, languages)
        if authors is not None:
            where.append(f"author_id IN ({','.join('?' * len(authors))})")
            params.extend(authors)
        if exclude_authors:
            where.append(f"author_id NOT IN ({','.join('?' * len(exclude_authors))})")
            params.extend(exclude_authors)
        sql = (
            "UPDATE queue SET status = 'claimed', agent = ?, lease_until = ?, snooze_until = NULL,"
            " version = version + 1,"
            " doc = json_set(doc, '$.status', 'claimed', '$.agent', ?, '$.lease_until', ?,"
            " '$.snooze_until', json('null'), '$.version', version + 1)"
            " WHERE id = (SELECT id FROM queue WHERE "
            + " AND ".join(where)
            + " ORDER BY priority DESC, enqueued_at LIMIT 1) RETURNING doc"
        )
        until = _iso(lease_until)
        with self._lock:
            try:
                with self._db:
                    rows = self._db.execute(sql, [agent, until, agent, until, *params]).fetchall()
            except sqlite3.OperationalError as exc:
                raise TransientError(f"embedded store: {exc}") from exc
        return QueueItem.model_validate_json(rows[0][0]) if rows else None

    def open_authors(
        self,
        now: datetime,
        topics: Sequence[str] | None = None,
        languages: Sequence[str] | None = None,
        limit: int = 20,
    ) -> list[str]:
        where, params = _claimable(now, topics, languages)
        rows = self._run(
            "SELECT author_id FROM queue WHERE " + " AND ".join(where)
            + " ORDER BY priority DESC, enqueued_at LIMIT ?",
            (*params, limit),
        )
        return [author for (author,) in rows]

    def agent_loads(self, now: datetime) -> dict[str, int]:
        rows = self._run(
            "SELECT agent, COUNT(*) FROM queue WHERE status = 'claimed' AND lease_until >= ?"
            " AND agent IS NOT NULL GROUP BY agent",
            (_iso(now),),
        )
        return {agent: n for agent, n in rows}

    def get_item(self, item_id: str) -> QueueItem | None:
        rows = self._run("SELECT doc FROM queue WHERE id = ?", (item_id,))
        return QueueItem.model_validate_json(rows[0][0]) if rows else None

    def get_items(self, item_ids: Sequence[str]) -> list[QueueItem]:
        if not item_ids:
            return []
        rows = self._run(
            f"SELECT doc FROM queue WHERE id IN ({','.join('?' * len(item_ids))})", tuple(item_ids)
        )
        return [QueueItem.model_validate_json(r[0]) for r in rows]

    def update_item(self, item_id: str, version: int, changes: dict[str, Any]) -> QueueItem | None:
        """Compare-and-set under SQLite's write lock: only a writer at ``version`` succeeds."""
        with self._lock:
            try:
                with self._db:
                    rows = self._db.execute(
                        "SELECT doc FROM queue WHERE id = ? AND version = ?", (item_id, version)
                    ).fetchall()
                    if not rows:
                        return None
                    item = QueueItem.model_validate(
                        {**orjson.loads(rows[0][0]), **changes, "version": version + 1}
                    )
                    self._db.execute(
                        "UPDATE queue SET status = ?, agent = ?, lease_until = ?,"
                        " snooze_until = ?, version = ?, doc = ?, priority = ?, band = ?"
                        " WHERE id = ? AND version = ?",
                        (
                            item.status,
                            item.agent,
                            _iso(item.lease_until) if item.lease_until else None,
                            _iso(item.snooze_until) if item.snooze_until else None,
                            item.version,
                            _dumps(item.model_dump(mode="json")),
                            item.priority,
                            item.band,
                            item_id,
                            version,
                        ),
                    )
            except sqlite3.OperationalError as exc:
                raise TransientError(f"embedded store: {exc}") from exc
        return item

    def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        rows = [(_iso(e.at), e.item_id, _dumps(e.model_dump(mode="json"))) for e in entries]
        with self._lock, self._db:
            self._db.executemany("INSERT INTO audit (at, item_id, doc) VALUES (?,?,?)", rows)

    def get_checkpoint(self, key: str) -> str | None:
        rows = self._run("SELECT value FROM checkpoints WHERE id = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_checkpoint(self, key: str, value: str) -> None:
        at = _iso(datetime.now(UTC))
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO checkpoints (id, value, at) VALUES (?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET value = excluded.value, at = excluded.at",
                (key, value, at),
            )

    def checkpoints_under(self, prefix: str) -> list[SavedCheckpoint]:
        rows = self._run(
            "SELECT id, value, at FROM checkpoints WHERE id >= ? AND id < ? ORDER BY id",
            (prefix, prefix_end(prefix)),
        )
        return [
            SavedCheckpoint(str(k), str(v), datetime.fromisoformat(at) if at else None)
            for k, v, at in rows
        ]

    def resolved_since(self, since: datetime | None) -> list[QueueItem]:
        at = "julianday(json_extract(doc, '$.resolution.at'))"
        rows = self._run(
            f"SELECT doc FROM queue WHERE status = 'resolved' AND {at} >= julianday(?)"
            f" ORDER BY {at}, id",
            (_iso(since) if since else "0000-01-01T00:00:00Z",),
        )
        return [QueueItem.model_validate_json(r[0]) for r in rows]

    def audit_of_items(self, item_ids: Sequence[str]) -> list[AuditEntry]:
        if not item_ids:
            return []
        rows = self._run(
            f"SELECT doc FROM audit WHERE item_id IN ({','.join('?' * len(item_ids))})"
            " ORDER BY seq",
            list(item_ids),
        )
        return [AuditEntry.model_validate_json(r[0]) for r in rows]

    def open_items_of_author(self, author_id: str) -> list[str]:
        rows = self._run(
            "SELECT id FROM queue WHERE author_id = ? AND status != 'resolved'", (author_id,)
        )
        return [r[0] for r in rows]

    def record_outbound(self, reply: OutboundReply) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO outbound VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
                " at = excluded.at, doc = excluded.doc",
                (reply.id, _iso(reply.at), reply.model_dump_json()),
            )

    def outbound_since(self, since: datetime) -> list[OutboundReply]:
        rows = self._run(
            "SELECT doc FROM outbound WHERE at >= ? ORDER BY at, id", (_iso(since),)
        )
        return [OutboundReply.model_validate_json(r[0]) for r in rows]

    def add_correction(self, correction: Correction) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO corrections (at, item_id, doc) VALUES (?,?,?)",
                (_iso(correction.at), correction.item_id, correction.model_dump_json()),
            )

    def list_corrections(self) -> list[Correction]:
        rows = self._run("SELECT doc FROM corrections ORDER BY at, seq")
        return [Correction.model_validate_json(r[0]) for r in rows]

    def author_posts(self, author_ids: Sequence[str], limit: int = 50) -> list[dict[str, Any]]:
        if not author_ids:
            return []
        rows = self._run(
            f"SELECT doc FROM posts WHERE author_key IN ({','.join('?' * len(author_ids))})"
            " ORDER BY created_at DESC LIMIT ?",
            (*author_ids, limit),
        )
        return [orjson.loads(r[0]) for r in rows]

    def author_items(self, author_ids: Sequence[str]) -> list[QueueItem]:
        if not author_ids:
            return []
        rows = self._run(
            f"SELECT doc FROM queue WHERE author_id IN ({','.join('?' * len(author_ids))})"
            " ORDER BY enqueued_at",
            tuple(author_ids),
        )
        return [QueueItem.model_validate_json(r[0]) for r in rows]

    def put_record(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO records VALUES (?, ?, ?) ON CONFLICT(kind, key) DO UPDATE SET"
                " doc = excluded.doc",
                (kind, key, _record(doc)),
            )

    def add_record(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO records VALUES (?, ?, ?)", (kind, key, _record(doc))
            )
            return cursor.rowcount == 1

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        rows = self._run("SELECT doc FROM records WHERE kind = ? AND key = ?", (kind, key))
        return orjson.loads(rows[0][0]) if rows else None

    def take_lease(
        self,
        name: str,
        holder: str,
        until: datetime,
        now: datetime,
        state: Mapping[str, Any] | None = None,
    ) -> Lease | None:
        """Read and write in one ``BEGIN IMMEDIATE`` transaction: SQLite's write lock, taken
        before the read, keeps another process from taking the lease in between."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    row = self._db.execute(
                        "SELECT holder, until, state FROM leases WHERE name = ?", (name,)
                    ).fetchone()
                    if row is not None and row[0] != holder and row[1] >= _iso(now):
                        self._db.rollback()
                        return None
                    kept = row[2] if row is not None else None
                    self._db.execute(
                        "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)",
                        (name, holder, _iso(until), kept if state is None else _dumps(dict(state))),
                    )
                    self._db.commit()
                except BaseException:
                    self._db.rollback()
                    raise
            except sqlite3.OperationalError as exc:
                raise TransientError(f"embedded store: {exc}") from exc
        if row is None:
            return Lease(None, None, {})
        return Lease(
            row[0], datetime.fromisoformat(row[1]), orjson.loads(row[2]) if row[2] else {}
        )

    def find_records(
        self,
        kind: str,
        where: Mapping[str, Any] | None = None,
        limit: int = 10_000,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        clauses, params = ["kind = ?"], [kind]
        for bound, op in ((since, ">="), (until, "<")):
            if bound is not None:
                clauses.append(f"json_extract(doc, '$.at') {op} ?")
                params.append(_iso(bound))
        for field, value in (where or {}).items():
            if not field.isidentifier():
                raise ValueError(f"bad record field {field!r}")
            column = f"json_extract(doc, '$.{field}')"
            if value is None:
                clauses.append(f"{column} IS NULL")
            elif isinstance(value, list | tuple | set):
                values = list(value)
                if not values:
                    return []
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
            else:
                clauses.append(f"{column} = ?")
                params.append(value)
        rows = self._run(
            f"SELECT doc FROM records WHERE {' AND '.join(clauses)} ORDER BY rowid LIMIT ?",
            (*params, limit),
        )
        return [orjson.loads(r[0]) for r in rows]

    def posts_between(
        self, since: datetime, until: datetime, limit: int = 100_000
    ) -> list[dict[str, Any]]:
        rows = self._run(
            "SELECT json_remove(doc, '$.post.raw') FROM posts"
            " WHERE created_at >= ? AND created_at < ? ORDER BY created_at LIMIT ?",
            (_iso(since), _iso(until), limit),
        )
        return [orjson.loads(r[0]) for r in rows]

    def save_user(self, user: UserAccount) -> None:
        doc = _dumps(user.model_dump(mode="json"))
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO users VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                (user.name, doc),
            )

    def get_user(self, name: str) -> UserAccount | None:
        rows = self._run("SELECT doc FROM users WHERE id = ?", (name,))
        return UserAccount.model_validate_json(rows[0][0]) if rows else None

    def list_users(self) -> list[UserAccount]:
        rows = self._run("SELECT doc FROM users ORDER BY id")
        return [UserAccount.model_validate_json(r[0]) for r in rows]
    def close(self) -> None:
        with self._lock:
            self._db.close()


def _queue_where(query: QueueQuery) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters) for a queue page's filters."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in (
        ("status", query.statuses),
        ("band", query.bands),
        ("topic", query.topics),
        ("language", query.languages),
        ("json_extract(doc, '$.source')", query.sources),
    ):
        if values:
            clauses.append(f"{column} IN ({','.join('?' * len(values))})")
            params.extend(values)
    if query.search:
        needle = query.search.lower()
        clauses.append(
            "(instr(lower(json_extract(doc, '$.text')), ?) > 0 OR instr(lower(author_id), ?) > 0"
            " OR instr(lower(id), ?) > 0 OR author_id IN (SELECT id FROM authors"
            " WHERE instr(lower(json_extract(doc, '$.handle')), ?) > 0))"
        )
        params.extend([needle] * 4)
    for bounds, op in ((query.created_before, "<"), (query.created_after, ">=")):
        if bounds is None:
            continue
        parts = []
        for band, at in bounds.items():
            parts.append(f"({SLA_BAND} = ? AND {CREATED} {op} julianday(?))")
            params.extend([band, _iso(at)])
        clauses.append("(" + " OR ".join(parts or ["0"]) + ")")
    return clauses, params


def _claimable(
    now: datetime, topics: Sequence[str] | None, languages: Sequence[str] | None
) -> tuple[list[str], list[Any]]:
    """The WHERE terms (and their parameters) of the items a claim under this routing may take."""
    where = [
        "(status = 'open' OR (status = 'claimed' AND lease_until < ?)"
        " OR (status = 'snoozed' AND snooze_until < ?))"
    ]
    params: list[Any] = [_iso(now), _iso(now)]
    for column, allowed in (("topic", topics), ("language", languages)):
        if allowed:
            where.append(f"{column} IN ({','.join('?' * len(allowed))})")
            params.extend(allowed)
    return where, params

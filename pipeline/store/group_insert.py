"""Concurrent inserts into one collection, sent as one ``insert_many``.

Fifty agents claiming at once each insert a ledger token and an audit entry. One at a time, each
insert is a round trip and, on FerretDB's SQLite backend, a transaction of its own; together they
queue behind the database's single writer. Here the first caller sends what every waiting caller
has queued while the previous batch was in flight (group commit): no timer, no added wait when the
store is quiet, and one transaction per batch under load.

Each caller waits on a lock of its own, released once when its batch is done or when it is handed
the next batch to send: a finished batch wakes only its own callers and one next sender, not every
waiting thread (with fifty threads, waking them all cost more CPU than the inserts).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


@dataclass
class _Request:
    docs: Sequence[dict[str, Any]]
    inserted: list[bool] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False
    wake: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.wake.acquire()  # released once, by whoever has news for this caller


class GroupInsert:
    def __init__(self, collection: Collection[dict[str, Any]]) -> None:
        self._collection = collection
        self._lock = threading.Lock()
        self._waiting: list[_Request] = []
        self._busy = False  # a caller is sending, or has been handed the next batch

    def insert(self, docs: Sequence[dict[str, Any]]) -> list[bool]:
        """Insert ``docs``; for each, True if inserted, False if its ``_id`` was taken. Other
        write errors raise (pymongo's own exceptions, for the caller to classify)."""
        request = _Request(docs)
        with self._lock:
            self._waiting.append(request)
            sends, self._busy = not self._busy, True
        if not sends:
            request.wake.acquire()
        if not request.done:  # woken to send: the batch holds this caller's own request
            with self._lock:
                batch, self._waiting = self._waiting, []
            try:
                self._send(batch)
            finally:
                with self._lock:
                    following = self._waiting[0] if self._waiting else None
                    self._busy = following is not None
                if following is not None:  # first, so that the next batch goes out sooner
                    following.wake.release()
                for other in batch:
                    other.done = True
                    if other is not request:
                        other.wake.release()
        if request.error is not None:
            raise request.error
        return request.inserted

    def _send(self, batch: list[_Request]) -> None:
        docs = [d for r in batch for d in r.docs]
        taken: set[int] = set()
        error: BaseException | None = None
        try:
            self._collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                error = exc
            taken = {e["index"] for e in errors}
        except Exception as exc:
            error = exc
        i = 0
        for request in batch:
            request.inserted = [i + k not in taken for k in range(len(request.docs))]
            request.error = error
            i += len(request.docs)

"""Concurrent inserts into one collection, sent as one ``insert_many``.

Fifty agents claiming at once each insert a ledger token and an audit entry. One at a time, each
insert is a round trip and, on FerretDB's SQLite backend, a transaction of its own; together they
queue behind the database's single writer. Here the first caller sends what every waiting caller
has queued while the previous batch was in flight (group commit): no timer, no added wait when the
store is quiet, and one transaction per batch under load.
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


class GroupInsert:
    def __init__(self, collection: Collection[dict[str, Any]]) -> None:
        self._collection = collection
        self._cond = threading.Condition()
        self._waiting: list[_Request] = []
        self._busy = False

    def insert(self, docs: Sequence[dict[str, Any]]) -> list[bool]:
        """Insert ``docs``; for each, True if inserted, False if its ``_id`` was taken. Other
        write errors raise (pymongo's own exceptions, for the caller to classify)."""
        request = _Request(docs)
        with self._cond:
            self._waiting.append(request)
            while not request.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy, batch, self._waiting = True, self._waiting, []
                self._cond.release()
                try:
                    self._send(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        return request.inserted

    def _send(self, batch: list[_Request]) -> None:
        docs = [d for r in batch for d in r.docs]
        taken: set[int] = set()
        try:
            self._collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                self._finish(batch, exc)
                return
            taken = {e["index"] for e in errors}
        except Exception as exc:
            self._finish(batch, exc)
            return
        i = 0
        for request in batch:
            request.inserted = [i + k not in taken for k in range(len(request.docs))]
            i += len(request.docs)
        self._finish(batch, None)

    def _finish(self, batch: list[_Request], error: BaseException | None) -> None:
        for request in batch:
            request.error = error
            request.done = True

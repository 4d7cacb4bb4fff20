"""Unresolved queue items in memory, in claim order: where a MongoDB-wire store picks claim
candidates.

FerretDB v1 (SQLite backend) pushes no filter or sort down except ``{_id: ...}``, so a sorted
find decodes every queue document on every claim. The store loads this index once, keeps it
current with its own writes and re-reads it in the background for other processes' writes. The
index only proposes candidates: the ledger insert in ``MongoStore`` decides who gets one, so a
stale entry costs a refused insert, never a double claim, as long as the ledger token it would
collide with is still there. Ledger tokens are compacted away a while after they are folded into
the queue, so ``pick`` only proposes entries known current more recently than that.
"""

from __future__ import annotations

import bisect
import heapq
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from pipeline.records import QueueItem

Key = tuple[float, datetime, str]


def _key(item: QueueItem) -> Key:
    return (-item.priority, item.enqueued_at, item.id)


def claimable(item: QueueItem, now: datetime) -> bool:
    """Open, or claimed under a lapsed lease, or snoozed past its time."""
    if item.status == "open":
        return True
    if item.status == "claimed":
        return item.lease_until is not None and item.lease_until < now
    if item.status == "snoozed":
        return item.snooze_until is not None and item.snooze_until < now
    return False


def _live(item: QueueItem, now: datetime) -> bool:
    return item.status == "claimed" and item.lease_until is not None and item.lease_until >= now


class ClaimIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, QueueItem] = {}
        self._order: list[Key] = []  # claimable-looking items, most urgent first
        self._timed: list[tuple[datetime, str, int]] = []  # when a lease or snooze lapses
        self._taken: set[str] = set()  # picked by a thread of this process, not settled yet
        self._held: dict[str, set[str]] = {}  # agent: the claimed items they hold (or held)
        self._seen: dict[str, float] = {}  # when each entry was last known current (monotonic)

    def merge(self, items: Iterable[QueueItem], read_at: float | None = None) -> None:
        """Add or refresh items read at ``read_at`` (monotonic; default now); an entry only ever
        moves to a newer version."""
        at = time.monotonic() if read_at is None else read_at
        with self._lock:
            for item in items:
                old = self._items.get(item.id)
                if old is None or item.version > old.version:
                    self._put(old, item, at)
                elif item.version == old.version:
                    self._seen[item.id] = max(at, self._seen[item.id])

    def versions(self) -> dict[str, int]:
        """The version of every entry: what a re-read need not validate again."""
        with self._lock:
            return {item_id: item.version for item_id, item in self._items.items()}

    def replace(
        self, changed: Iterable[QueueItem], unchanged: Mapping[str, int], read_at: float
    ) -> None:
        """Merge a read of every unresolved item that started at ``read_at``: ``changed`` items,
        and the versions of those found as ``versions`` gave them. Entries it did not return,
        and not known current since, were resolved elsewhere and leave the index."""
        self.merge(changed, read_at)
        with self._lock:
            for item_id, version in unchanged.items():
                item = self._items.get(item_id)
                if item is not None and item.version == version:
                    self._seen[item_id] = max(read_at, self._seen[item_id])
            gone = [i for i, seen in self._seen.items() if seen < read_at and i not in self._taken]
            for item_id in gone:
                self._drop(item_id)

    def pick(
        self,
        now: datetime,
        topics: Sequence[str] | None,
        languages: Sequence[str] | None,
        authors: Sequence[str] | None,
        exclude_authors: Sequence[str] | None,
        known_since: float,
        skip: int = 0,
    ) -> tuple[QueueItem | None, bool]:
        """The most urgent claimable item these filters allow, among entries known current since
        ``known_since`` (monotonic), reserved for the caller until ``settle``: two threads of
        one process never try the same item. ``skip`` passes over that many such items first,
        where there are more. Also whether an older entry was passed over."""
        stale = False
        found: QueueItem | None = None
        with self._lock:
            self._lapse(now)
            wanted = None if authors is None else set(authors)
            unwanted = set(exclude_authors or ())
            for key in self._order:
                item = self._items[key[2]]
                if (
                    item.id in self._taken
                    or not claimable(item, now)
                    or (topics and item.topic not in topics)
                    or (languages and item.language not in languages)
                    or (wanted is not None and item.author_id not in wanted)
                    or item.author_id in unwanted
                ):
                    continue
                if self._seen[item.id] < known_since:
                    stale = True
                    continue
                found = item
                if skip == 0:
                    break
                skip -= 1
            if found is not None:
                self._taken.add(found.id)
            return found, stale

    def settle(self, item_id: str, current: QueueItem | None) -> None:
        """Release the reservation; ``current`` is what the item is now, if known."""
        with self._lock:
            self._taken.discard(item_id)
            if current is None:
                self._drop(item_id)
                return
            old = self._items.get(item_id)
            if old is None or current.version >= old.version:
                self._put(old, current, time.monotonic())

    def loads(self, now: datetime) -> dict[str, int]:
        """Items each agent holds under a live lease."""
        with self._lock:
            counts = {
                agent: sum(1 for i in ids if _live(self._items[i], now))
                for agent, ids in self._held.items()
            }
        return {agent: n for agent, n in counts.items() if n}

    def _put(self, old: QueueItem | None, item: QueueItem, seen: float) -> None:
        if item.status == "resolved":
            self._drop(item.id)
            return
        if old is not None:
            self._forget(old)
        self._items[item.id] = item
        self._seen[item.id] = seen
        if item.status == "open":
            bisect.insort(self._order, _key(item))
        elif item.status == "claimed" and item.lease_until is not None:
            heapq.heappush(self._timed, (item.lease_until, item.id, item.version))
            if item.agent is not None:
                self._held.setdefault(item.agent, set()).add(item.id)
        elif item.status == "snoozed" and item.snooze_until is not None:
            heapq.heappush(self._timed, (item.snooze_until, item.id, item.version))

    def _drop(self, item_id: str) -> None:
        old = self._items.pop(item_id, None)
        self._seen.pop(item_id, None)
        if old is not None:
            self._forget(old)

    def _forget(self, item: QueueItem) -> None:
        """Take this version of the item out of claim order and out of its holder's items."""
        if item.agent is not None and (ids := self._held.get(item.agent)) is not None:
            ids.discard(item.id)
            if not ids:
                del self._held[item.agent]
        key = _key(item)
        i = bisect.bisect_left(self._order, key)
        if i < len(self._order) and self._order[i] == key:
            del self._order[i]

    def _lapse(self, now: datetime) -> None:
        """Leases and snoozes that ran out put their items back in claim order."""
        while self._timed and self._timed[0][0] < now:
            _, item_id, version = heapq.heappop(self._timed)
            item = self._items.get(item_id)
            if item is not None and item.version == version:
                bisect.insort(self._order, _key(item))

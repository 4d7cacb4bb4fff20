"""What a claim reads on the real DocumentDB (FerretDB 2 in front of PostgreSQL): the first claims
of a fresh API process do not each sort the whole queue, and a claim request looks for run-out
leases once when there are none. Each read is counted as the store sends it to the server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient

from bench.claims import synthetic
from pipeline.store.mongo import URGENT_FIRST, MongoStore

pytestmark = pytest.mark.mongo

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LEASE = NOW + timedelta(minutes=15)


class Sent:
    """The store's queue collection, forwarding every call to the server and noting it."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.collection, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args[0] if args else kwargs.get("filter", {})))
            return attr(*args, **kwargs)

        return call

    def of(self, name: str, where: Callable[[dict[str, Any]], bool]) -> int:
        return sum(1 for n, query in self.calls if n == name and where(query))


@pytest.fixture
def database(mongo_uri: str, unique: str) -> Iterator[str]:
    store = MongoStore(mongo_uri, f"test_reads_{unique}")
    store.ensure_schema()
    items = synthetic(2_000)
    for i in range(0, len(items), 1000):
        store.write_batch(items[i : i + 1000])
    store.close()
    yield f"test_reads_{unique}"
    with MongoClient(mongo_uri) as client:
        client.drop_database(f"test_reads_{unique}")


def fresh(mongo_uri: str, database: str) -> tuple[MongoStore, Sent]:
    """A store as a freshly started API process opens it: no claim window learnt yet."""
    store = MongoStore(mongo_uri, database)
    sent = Sent(store.queue)
    store.queue = sent  # type: ignore[assignment]
    return store, sent


def unbounded(query: dict[str, Any]) -> bool:
    return query.get("status") == "open" and "priority" not in query


def test_the_first_claims_of_a_fresh_process_sort_the_queue_once(
    mongo_uri: str, database: str
) -> None:
    store, sent = fresh(mongo_uri, database)
    agents = 8
    start = threading.Barrier(agents)
    taken: list[str] = []

    def claim(agent: str) -> None:
        start.wait()
        item = store.claim_next(agent, LEASE, NOW)
        assert item is not None
        taken.append(item.id)

    threads = [threading.Thread(target=claim, args=(f"a{k}",)) for k in range(agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        # one claim read the whole queue; the others waited for it and read only the top
        assert sent.of("find_one_and_update", unbounded) == 1, sent.calls
        assert len(set(taken)) == agents
        top = store.queue.find({"status": "claimed"}, {"_id": 1}).sort(URGENT_FIRST)
        assert sorted(taken) == sorted(d["_id"] for d in top)
        assert store.queue.count_documents({"status": "open"}) == 2_000 - agents
    finally:
        store.close()


def test_a_claim_request_looks_for_run_out_leases_once_when_none_ran_out(
    mongo_uri: str, database: str
) -> None:
    store, sent = fresh(mongo_uri, database)

    def ran_out(query: dict[str, Any]) -> bool:
        return "$or" in query

    try:
        # a request's three looks (its own customers, whose customers come next, the claim),
        # all with the request's one ``now``
        assert store.claim_next("a1", LEASE, NOW, authors=["bench:u1", "bench:u2"]) is not None
        assert store.open_authors(NOW)
        assert store.claim_next("a1", LEASE, NOW, exclude_authors=["bench:u3"]) is not None
        assert sent.of("find_one", ran_out) == 1, sent.calls
        # a lease that ran out before the next request's ``now`` is taken by it, first
        later = NOW + timedelta(minutes=20)
        held = store.queue.find_one({"status": "claimed", "agent": "a1"}, sort=URGENT_FIRST)
        assert held is not None
        item = store.claim_next("a2", later + timedelta(minutes=15), later)
        assert item is not None and item.id == held["_id"] and item.agent == "a2"
        assert sent.of("find_one", ran_out) >= 2
    finally:
        store.close()

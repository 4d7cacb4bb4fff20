"""Ledger compaction on the real FerretDB: claim tokens folded into their queue documents are
deleted after the keep time, reads stay right, and a connection whose claim index is older than
the deleted tokens still cannot take an item someone else changed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import MongoClient

from bench.claims import synthetic
from pipeline.store.mongo import MongoStore

pytestmark = pytest.mark.mongo
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
KEEP_S = 0.6  # the claim index trusts an entry for a sixth of it


@pytest.fixture
def stores(mongo_uri: str, unique: str) -> Iterator[list[MongoStore]]:
    """Two connections to one database, as two API processes, with a short ledger keep time."""
    made = [MongoStore(mongo_uri, f"test_{unique}", ledger_keep_s=KEEP_S) for _ in range(2)]
    made[0].ensure_schema()
    made[0].write_batch(synthetic(20))
    yield made
    for s in made:
        s.close()  # first: their background writes must not land in a database being dropped
    with MongoClient(mongo_uri) as client:
        client.drop_database(f"test_{unique}")


def wait_for_empty_ledger(store: MongoStore) -> None:
    deadline = time.monotonic() + 30
    while store.count("claims") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.count("claims") == 0


def test_folded_tokens_are_deleted_and_reads_stay_right(stores: list[MongoStore]) -> None:
    store, other = stores
    lease = NOW + timedelta(minutes=10)
    first = store.claim_next("ann", lease, NOW)
    second = store.claim_next("bob", lease, NOW)
    assert first and second
    released = store.update_item(first.id, first.version, {"status": "open", "agent": None,
                                                           "lease_until": None})
    assert released is not None and released.version == 2
    assert store.count("claims") == 3
    wait_for_empty_ledger(store)

    back = other.get_item(first.id)
    assert back is not None and (back.status, back.agent, back.version) == ("open", None, 2)
    held = other.get_item(second.id)
    assert held is not None and (held.status, held.agent, held.version) == ("claimed", "bob", 1)
    assert other.agent_loads(NOW) == {"bob": 1}
    # the version goes on from the folded document: the next change is token #3, once
    again = other.claim_next("cy", lease, NOW)
    assert again is not None and again.id == first.id and again.version == 3
    assert store.update_item(first.id, 2, {"status": "resolved"}) is None


def test_a_stale_index_cannot_take_an_item_whose_tokens_are_gone(
    stores: list[MongoStore],
) -> None:
    store, stale = stores
    lease = NOW + timedelta(minutes=10)
    assert stale.agent_loads(NOW) == {}  # its claim index is read now, before any change
    top = store.claim_next("ann", lease, NOW)
    assert top is not None
    resolved = store.update_item(top.id, top.version, {"status": "resolved",
                                                       "lease_until": None})
    assert resolved is not None
    wait_for_empty_ledger(store)  # "<top>#1" could be inserted again now

    taken = stale.claim_next("bob", lease, NOW)
    assert taken is not None and taken.id != top.id
    done = stale.get_item(top.id)
    assert done is not None and done.status == "resolved" and done.agent == "ann"

"""Group inserts on the real FerretDB: many callers at once, each told exactly what became of
its own documents, and every caller woken (none left waiting) whatever the batch did."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from pipeline.store.group_insert import GroupInsert

pytestmark = pytest.mark.mongo
CALLERS = 40


@pytest.fixture
def collection(mongo_uri: str, unique: str) -> Iterator[Collection[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        yield client[f"test_group_{unique}"]["tokens"]
    finally:
        client.drop_database(f"test_group_{unique}")
        client.close()


def run_all(group: GroupInsert, docs: list[list[dict[str, Any]]]) -> list[Any]:
    """Every caller inserts its documents at once; what each got back, or raised."""
    results: list[Any] = [None] * len(docs)
    start = threading.Barrier(len(docs))

    def call(i: int) -> None:
        start.wait()
        try:
            results[i] = group.insert(docs[i])
        except PyMongoError as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(docs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a caller was never woken"
    return results


def test_each_caller_learns_which_of_its_ids_it_won(
    collection: Collection[dict[str, Any]],
) -> None:
    collection.insert_one({"_id": "taken"})
    # caller i races caller i ^ 1 for one shared id, and inserts one id of its own
    docs = [[{"_id": f"shared{i // 2}", "by": i}, {"_id": f"own{i}"}] for i in range(CALLERS)]
    docs[0].append({"_id": "taken"})
    results = run_all(GroupInsert(collection), docs)

    assert results[0][2] is False  # already there before the race
    assert all(r[1] for r in results)  # an id nobody else wanted always goes in
    for pair in range(CALLERS // 2):
        assert sorted([results[2 * pair][0], results[2 * pair + 1][0]]) == [False, True]
        winner = 2 * pair if results[2 * pair][0] else 2 * pair + 1
        assert collection.find_one({"_id": f"shared{pair}"}) == {"_id": f"shared{pair}",
                                                                 "by": winner}
    assert collection.count_documents({}) == 1 + CALLERS // 2 + CALLERS


def test_a_failed_batch_raises_in_every_caller_and_the_next_batch_still_goes(
    collection: Collection[dict[str, Any]],
) -> None:
    group = GroupInsert(collection)
    bad = [[{"_id": f"x{i}", "$bad": 1}] for i in range(CALLERS)]  # field names FerretDB refuses
    results = run_all(group, bad)
    assert all(isinstance(r, PyMongoError) for r in results)
    assert run_all(group, [[{"_id": f"y{i}"}] for i in range(CALLERS)]) == [[True]] * CALLERS

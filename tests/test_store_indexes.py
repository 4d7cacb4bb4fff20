"""Every hot query of the MongoDB store is served by an index, checked with ``explain`` on the
real DocumentDB (FerretDB 2 in front of PostgreSQL): claims, the console's queue page, the SLA
sweep's reads, agents' loads, a customer's items and the resolved history.

DocumentDB plans with PostgreSQL's statistics, which autovacuum keeps; the test runs ANALYZE
itself after loading, as a running service would have, instead of waiting for it. DocumentDB
0.108 reads a claim's open items through the ``claim`` index and then sorts them (MongoDB reads
them in order from it): the index is what this checks.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient

from bench.claims import synthetic
from pipeline.store.mongo import QUEUE_INDEXES, URGENT_FIRST, MongoStore, _ran_out
from tests.conftest import required_env

pytestmark = pytest.mark.mongo

ITEMS = 3_000
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def loaded(mongo_uri: str, unique: str) -> Iterator[MongoStore]:
    store = MongoStore(mongo_uri, f"test_plan_{unique}")
    try:
        store.ensure_schema()
        items = synthetic(ITEMS)
        for i in range(0, ITEMS, 1000):
            store.write_batch(items[i : i + 1000])
        # some items held, snoozed and resolved, as in a working queue
        for n, item in enumerate(items[:300]):
            changes: dict[str, Any] = {"status": "claimed", "agent": f"a{n % 10}",
                                       "lease_until": NOW + timedelta(minutes=n - 150)}
            if n % 3 == 1:
                changes = {"status": "snoozed", "snooze_until": NOW + timedelta(minutes=n)}
            if n % 3 == 2:
                changes = {"status": "resolved",
                           "resolution": {"reply": "ok", "by": "a1", "at": NOW}}
            assert store.update_item(item.id, 0, changes) is not None
        analyze()
        yield store
    finally:
        store.close()
        with MongoClient(mongo_uri) as client:
            client.drop_database(f"test_plan_{unique}")


def analyze() -> None:
    """Fresh statistics, as autovacuum would have them on a running service."""
    port = required_env("TRIAGE_POSTGRES_PORT")
    subprocess.run(["/usr/lib/postgresql/15/bin/psql", "-h", "127.0.0.1", "-p", port,
                    "-U", "postgres", "-qc", "ANALYZE"], check=True)


def plan(store: MongoStore, collection: str, query: dict[str, Any],
         sort: list[tuple[str, int]] | None = None) -> tuple[list[str], list[str]]:
    """The indexes a find's plan reads, and its nodes (a Sort node: the index did not order)."""
    command: dict[str, Any] = {"find": collection, "filter": query, "limit": 50}
    if sort:
        command["sort"] = dict(sort)
    explained = json.dumps(
        store._db.command("explain", command, verbosity="queryPlanner"), default=str
    )
    return (re.findall(r'"Index Name": "([^"]+)"', explained),
            re.findall(r'"Node Type": "([^"]+)"', explained))


# Skills. An affinity's author exclusion ($nin) is left out: DocumentDB 0.108 may plan it on
# the author index (docs/performance.md, "The store"), and FerretDB 2.7 has no hint for
# findAndModify.
def index_name(keys: list[tuple[str, int]]) -> str:
    """MongoDB's default name of an index, which the store keeps."""
    return "_".join(f"{field}_{order}" for field, order in keys)


ROUTING = {"language": {"$in": ["en"]}, "topic": {"$in": ["delivery", "billing"]}}
QUEUE_QUERIES = {
    # the claim, the console's queue page and the sweep's read of one state: in claim order
    "claim": ({"status": "open"}, URGENT_FIRST, "claim"),
    "routed claim": ({"status": "open", **ROUTING}, URGENT_FIRST, "claim"),
    # a claim looks first at priorities just below the last one's (CLAIM_WINDOW_MARGINS)
    "claim in a window": ({"status": "open", "priority": {"$gte": 90.0}}, URGENT_FIRST, "claim"),
    # the claim of a customer's item the agent helped last (affinity)
    "claim among customers": ({"status": "open", "author_id": {"$in": ["bench:u7", "bench:u9"]}},
                              URGENT_FIRST, "author"),
    "claimed in order": ({"status": "claimed"}, URGENT_FIRST, "claim"),
    # live leases (agents' loads)
    "live leases": ({"status": "claimed", "lease_until": {"$gte": NOW}}, None, "lease"),
    "author's open items": ({"author_id": "bench:u7", "status": {"$ne": "resolved"}}, None,
                            "author"),
    "resolved since": ({"resolution.at": {"$gte": NOW}}, [("resolution.at", 1)], "resolved"),
    # a spike's items for its incident, from every worker (Store.queue_mentioning)
    "a spike's items": (
        {
            "post_created_at": {"$gte": NOW - timedelta(minutes=5)},
            "$or": [{"text": {"$regex": "outage|acme", "$options": "i"}}],
        },
        [("post_created_at", -1)],
        "created",
    ),
}


@pytest.mark.parametrize("name", list(QUEUE_QUERIES))
def test_a_hot_queue_query_reads_its_index(loaded: MongoStore, name: str) -> None:
    query, sort, index = QUEUE_QUERIES[name]
    indexes, nodes = plan(loaded, "queue", query, sort)
    # Its index, perhaps with ``claim`` in a BitmapAnd for the status; never a scan of the table.
    assert index_name(QUEUE_INDEXES[index]) in indexes, (indexes, nodes)
    assert "Seq Scan" not in nodes, nodes



@pytest.mark.parametrize("routing", [{}, ROUTING], ids=["any skills", "routed"])
def test_run_out_leases_and_snoozes_are_read_through_their_indexes(
    loaded: MongoStore, routing: dict[str, Any]
) -> None:
    """Every claim first asks for items whose lease or snooze ran out (one ``$or``): each
    branch through its own index, never a walk of the queue."""
    indexes, nodes = plan(loaded, "queue", _ran_out(NOW, routing), URGENT_FIRST)
    assert index_name(QUEUE_INDEXES["lease"]) in indexes, (indexes, nodes)
    assert index_name(QUEUE_INDEXES["snooze"]) in indexes, (indexes, nodes)
    assert "Seq Scan" not in nodes, nodes


def test_posts_by_author_and_by_time_read_their_indexes(loaded: MongoStore) -> None:
    by_author, _ = plan(loaded, "posts", {"author_key": "bench:u7"}, [("created_at", -1)])
    assert by_author and all(i.startswith("author_key") for i in by_author)
    by_time, _ = plan(loaded, "posts", {"created_at": {"$gte": NOW}}, [("created_at", 1)])
    assert by_time and all(i.startswith("created_at") for i in by_time)


def test_a_closed_minute_s_counts_are_read_through_the_time_index(loaded: MongoStore) -> None:
    """The trend lease holder reads every worker's buckets of each minute it closes (and every
    worker the live progress records): a range on the records' ``at`` index, not a walk of a
    day of buckets."""
    records = loaded.records("trend_buckets")
    records.insert_many(
        [
            {
                "_id": f"w{w}:{m}:0",
                "seq": 2 * m + w,
                "doc": {"at": NOW + timedelta(minutes=m), "minute": m, "keys": ["all"],
                        "counts": [1]},
            }
            for m in range(1440)
            for w in range(2)
        ]
    )
    analyze()
    minute = {"$gte": NOW + timedelta(minutes=700), "$lt": NOW + timedelta(minutes=701)}
    indexes, nodes = plan(loaded, records.name, {"doc.at": minute}, [("seq", 1)])
    assert "doc.at_1" in indexes, (indexes, nodes)
    assert "Seq Scan" not in nodes, nodes


def test_a_claim_s_affinity_lookups_read_their_indexes(loaded: MongoStore) -> None:
    """A claim reads who helped the customers it would reach, and the agent's own customers:
    each through an index on the field it is looked up by, made on first use."""
    for i in range(2000):
        loaded.put_record("affinity", f"bench:u{i}",
                          {"author_id": f"bench:u{i}", "agent": f"agent{i % 50:02d}",
                           "at": NOW.isoformat()})
    assert loaded.find_records("affinity", {"agent": "agent07"})
    assert loaded.find_records("affinity", {"author_id": ["bench:u7", "bench:u9"]})
    analyze()
    records = loaded.records("affinity").name
    by_agent, nodes = plan(loaded, records, {"doc.agent": "agent07"}, [("seq", 1)])
    assert "doc.agent_1" in by_agent and "Seq Scan" not in nodes, (by_agent, nodes)
    owners, nodes = plan(loaded, records, {"doc.author_id": {"$in": ["bench:u7", "bench:u9"]}},
                         [("seq", 1)])
    assert "doc.author_id_1" in owners and "Seq Scan" not in nodes, (owners, nodes)

"""What a stored post costs the MongoDB-wire server, with and without the store's indexes.

    . .services/env && .venv/bin/python -m bench.store_cost [--posts 6000]

Triages generated posts once, then writes them with ``MongoStore.write_batch`` in batches of 500
into a fresh database, once without the secondary indexes and once with ``ensure_schema``, and
prints the server's CPU per post (from /proc: FerretDB, PostgreSQL and its backends, as
``scripts/services`` started them) and the size of the stored documents. The databases are
dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

import bson
from pymongo import MongoClient

from bench.posts import post_bytes
from bench.throughput import STORE_SERVERS, service_pids, tree_cpu_seconds
from classifiers.registry import Registry
from classifiers.triager import Triager
from pipeline.records import Post
from pipeline.store.mongo import MongoStore

BATCH = 500


def server_cpu_seconds(pids: list[int]) -> float:
    """FerretDB's CPU and PostgreSQL's, with every PostgreSQL backend's."""
    return sum(tree_cpu_seconds(pid) for pid in pids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=6000)
    args = parser.parse_args()
    pids = [pid for name, pid in service_pids().items() if name in STORE_SERVERS]
    if not pids:
        raise SystemExit("store_cost: no store server running (make services-up)")
    uri = os.environ["TRIAGE_MONGO_URI"]
    triager = Triager.from_registry(Registry())
    posts = [Post.model_validate_json(b) for b in post_bytes("storecost", args.posts)]
    now = datetime.now(UTC)
    triaged = [
        t for i in range(0, len(posts), 1000) for t in triager.triage(posts[i : i + 1000], now)
    ]
    client = MongoClient(uri)
    for indexes in (False, True):
        name = f"storecost{int(indexes)}"
        client.drop_database(name)
        store = MongoStore(uri, name)
        if indexes:
            store.ensure_schema()
        store.write_batch(triaged[:BATCH])  # collections exist before the clock starts
        rest = triaged[BATCH:]
        cpu0, wall0 = server_cpu_seconds(pids), time.perf_counter()
        for i in range(0, len(rest), BATCH):
            store.write_batch(rest[i : i + BATCH])
        cpu1, wall1 = server_cpu_seconds(pids), time.perf_counter()
        print(
            f"{'with' if indexes else 'without'} indexes: server CPU "
            f"{1000 * (cpu1 - cpu0) / len(rest):.3f} ms/post, "
            f"write wall {1000 * (wall1 - wall0) / len(rest):.3f} ms/post"
        )
        post = client[name]["posts"].find_one()
        item = client[name]["queue"].find_one()
        assert post is not None and item is not None
        print(f"  stored post {len(bson.encode(post))} B, queue item {len(bson.encode(item))} B")
        store.close()
        client.drop_database(name)


if __name__ == "__main__":
    main()

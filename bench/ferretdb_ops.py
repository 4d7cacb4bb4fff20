"""What single operations cost on a 10,000-item queue collection (FerretDB in development).

    . .services/env && .venv/bin/python bench/ferretdb_ops.py [--items 10000]

Prints the median and worst time of each operation the queue uses to claim, in a database of
its own, dropped afterwards. On FerretDB v1.24's SQLite backend only inserts were cheap (every
other filter and sort scanned the table), which is why claims once inserted ledger tokens and
picked candidates from memory; on FerretDB 2 with DocumentDB finds, updates and sorted finds use
real indexes (docs/performance.md, "Claims on DocumentDB").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pymongo import ASCENDING, DESCENDING

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.claims import synthetic  # noqa: E402
from pipeline.store.mongo import MongoStore  # noqa: E402

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def timed(name: str, op: Callable[[int], object], reps: int) -> None:
    times = []
    for r in range(reps):
        t0 = time.perf_counter()
        op(r)
        times.append((time.perf_counter() - t0) * 1000)
    print(f"{name:48s} median {statistics.median(times):9.1f} ms   max {max(times):9.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    uri = os.environ.get("TRIAGE_MONGO_URI")
    if not uri:
        print("ferretdb_ops: TRIAGE_MONGO_URI is not set (make services-up; . .services/env)",
              file=sys.stderr)
        return 2
    database = f"bench_ops_{uuid.uuid4().hex[:8]}"
    store = MongoStore(uri, database, timeout_ms=60_000)
    try:
        store.ensure_schema()
        items = synthetic(args.items)
        for i in range(0, len(items), 1000):
            store.write_batch(items[i : i + 1000])
        ids = [t.id for t in items]
        q = store.queue
        step = max(1, len(ids) // 25)
        print(f"{args.items} queue documents, load average {os.getloadavg()[0]:.1f}")
        scratch = store._db["scratch"]
        timed("insert_one", lambda r: scratch.insert_one({"_id": f"t{r}", "item_id": ids[r]}), 20)
        timed("insert_many of 50", lambda r: scratch.insert_many(
            [{"_id": f"m{r}-{k}", "item_id": ids[k]} for k in range(50)], ordered=False), 5)
        timed("find_one by _id", lambda r: q.find_one({"_id": ids[r * step]}), 20)
        timed("update_one by _id", lambda r: q.update_one(
            {"_id": ids[r * step]}, {"$set": {"touched": r}}), 10)
        timed("find_one_and_update by _id", lambda r: q.find_one_and_update(
            {"_id": ids[r * step]}, {"$set": {"touched": r}}), 10)
        timed("sorted find of 8 open items", lambda r: list(q.find(
            {"status": "open"}, {"version": 1},
            sort=[("priority", DESCENDING), ("enqueued_at", ASCENDING)], limit=8)), 3)
        timed("find of every unresolved item", lambda r: list(q.find(
            {"status": {"$ne": "resolved"}})), 3)
    finally:
        store._client.drop_database(database)
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

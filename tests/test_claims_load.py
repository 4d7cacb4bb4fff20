"""The queue under load on the real FerretDB: 50 agents claiming 10,000 items at once.

Two store connections stand for two API processes, each with its own claim index, so the ledger
has to arbitrate between them as well as between threads. No timing is asserted: claim latency is
measured by bench/claims.py and reported in docs/performance.md.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import MongoClient

from bench.claims import synthetic
from pipeline.queue.agent_queue import AgentQueue
from pipeline.store.mongo import MongoStore

ITEMS = 10_000
AGENTS = 50
PROCESSES = 2

pytestmark = [pytest.mark.mongo, pytest.mark.slow]


def test_fifty_agents_empty_the_queue_without_sharing_an_item(mongo_uri: str, unique: str) -> None:
    database = f"test_load_{unique}"
    stores = [MongoStore(mongo_uri, database, timeout_ms=60_000) for _ in range(PROCESSES)]
    try:
        stores[0].ensure_schema()
        items = synthetic(ITEMS)
        for i in range(0, ITEMS, 1000):
            stores[0].write_batch(items[i : i + 1000])
        # Each process starts with its claim index read, as an API process has it after its
        # first request. Left to the first claims, one store's read could finish while the
        # other's 25 threads were already claiming (both share this one GIL, which two
        # processes do not): the late one then proposed only items the other had just taken,
        # fell further behind with each re-read, and its agents got nothing (one CI run: 27 of
        # 50 agents got work).
        for store in stores:
            store.agent_loads(datetime.now(UTC))
        claims: dict[str, list[str]] = {}
        errors: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(AGENTS)

        def agent(name: str, store: MongoStore) -> None:
            queue = AgentQueue(store, lease=timedelta(hours=12))
            mine = []
            start.wait()
            try:
                while (item := queue.claim_next(name)) is not None:
                    mine.append(item.id)
            except Exception as exc:  # any failure is a finding, reported below
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
            with lock:
                for item_id in mine:
                    claims.setdefault(item_id, []).append(name)

        threads = [
            threading.Thread(target=agent, args=(f"agent{i:02d}", stores[i % PROCESSES]))
            for i in range(AGENTS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert errors == []
        doubles = {item: names for item, names in claims.items() if len(names) > 1}
        assert doubles == {}
        assert set(claims) == {t.id for t in items}  # none lost
        # the store agrees: every item is claimed, by the agent that got it
        held = stores[1].list_queue("claimed", limit=ITEMS + 1)
        assert {i.id: i.agent for i in held} == {k: v[0] for k, v in claims.items()}
        per_agent = Counter(names[0] for names in claims.values())
        assert len(per_agent) == AGENTS  # every agent got work
    finally:
        for s in stores:
            s.close()  # first: their background writes must not land in a dropped database
        with MongoClient(mongo_uri) as client:
            client.drop_database(database)

"""The queue under load through HTTP: 50 agents over two API processes (`triage serve
--workers 2`) claiming and resolving every item of a queue on the real MongoDB-wire server.

Each agent signs in, then takes items with ``POST /api/v1/queue/next`` and closes each with
``POST /api/v1/items/{id}/resolve`` until the queue answers 204 (bench/claims.py's agents, which
also measure). The two processes share nothing but the store, so only the store's atomic claim
keeps two agents off one item. No timing is asserted: claim latency is measured by
bench/claims.py and reported in docs/performance.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pymongo import MongoClient

from bench.claims import add_agents, agent_names, api_processes, claim_all_http, synthetic
from pipeline.store.mongo import MongoStore

ITEMS = 1_000
AGENTS = 50
PROCESSES = 2

pytestmark = [pytest.mark.mongo, pytest.mark.slow]


def test_fifty_agents_over_two_api_processes_share_no_item_and_lose_none(
    mongo_uri: str, unique: str, tmp_path: Path
) -> None:
    database = f"test_load_{unique}"
    store = MongoStore(mongo_uri, database, timeout_ms=60_000)
    try:
        store.ensure_schema()
        items = synthetic(ITEMS, source="replay")  # replies are recorded, not sent
        for i in range(0, ITEMS, 1000):
            store.write_batch(items[i : i + 1000])
        names = agent_names(AGENTS)
        add_agents(store, names)
        with api_processes(mongo_uri, database, PROCESSES, tmp_path) as url:
            run = claim_all_http(url, names)

        assert run.errors == []
        assert run.doubles == []
        assert set(run.claims) == {t.id for t in items}  # none lost
        # the store agrees: every item is resolved, by the agent that claimed it
        done = store.list_queue("resolved", limit=ITEMS + 1)
        assert {i.id: i.resolution.by if i.resolution else None for i in done} == {
            k: v[0] for k, v in run.claims.items()
        }
        per_agent = Counter(who[0] for who in run.claims.values())
        assert len(per_agent) == AGENTS  # every agent got work
    finally:
        store.close()
        with MongoClient(mongo_uri) as client:
            client.drop_database(database)

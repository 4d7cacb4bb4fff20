"""What Kafka transactions (TRIAGE_KAFKA_TRANSACTIONS) cost the worker: posts/s of one in-process
worker over the real Kafka and the store, the same posts with and without, alternating runs.

    . .services/env && .venv/bin/python -m bench.transactions [--posts N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid

from classifiers.products import DEMO_PRODUCTS, load_products
from classifiers.registry import PACKAGED, Registry
from classifiers.triager import Triager
from pipeline.bus.kafka import KafkaBus
from pipeline.bus.topics import pipeline_topics
from pipeline.settings import Settings
from pipeline.store.mongo import MongoStore
from pipeline.worker import BatchStats, Worker
from tests.helpers import post_bytes


def one_run(triager: Triager, posts: int, transactions: bool) -> float:
    """Posts/s from the first batch's start to the last batch's end (no idle tail)."""
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap=os.environ["TRIAGE_KAFKA_BOOTSTRAP"],
        topic_raw=f"bench.{tag}.raw",
        topic_triaged=f"bench.{tag}.triaged",
        topic_dlq=f"bench.{tag}.dlq",
        topic_alerts=f"bench.{tag}.alerts",
        topic_spam=f"bench.{tag}.spam",
        consumer_group=f"bench.{tag}",
        kafka_transactions=transactions,
        kafka_transactional_id=f"bench.{tag}" if transactions else None,
    )
    bus = KafkaBus(
        os.environ["TRIAGE_KAFKA_BOOTSTRAP"],
        partitions=settings.partitions,
        topics=pipeline_topics(settings),
    )
    bus.ensure_topics([settings.topic_raw])
    feeder = KafkaBus(bus.bootstrap).producer()
    for i in range(posts):
        feeder.send(settings.topic_raw, post_bytes(i))
    feeder.flush()
    feeder.close()
    store = MongoStore(os.environ["TRIAGE_MONGO_URI"], f"bench_{tag}")
    store.ensure_schema()
    worker = Worker(bus, store, triager, settings)
    first: list[float] = []
    last = [0.0]
    done = BatchStats()

    def on_batch(stats: BatchStats) -> None:
        now = time.perf_counter()
        if not first:
            first.append(now - stats.seconds)
        last[0] = now
        done.add(stats)

    try:
        worker.run(threading.Event(), idle_exit_s=5, on_batch=on_batch)
    finally:
        worker.close()
        store._client.drop_database(f"bench_{tag}")
        store.close()
    assert done.posts == posts, f"{done.posts} of {posts} posts triaged"
    return posts / (last[0] - first[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    triager = Triager.from_registry(Registry(PACKAGED), load_products(DEMO_PRODUCTS))
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for transactions in (False, True):
            rates[transactions].append(one_run(triager, args.posts, transactions))
    for transactions, found in rates.items():
        label = "transactions" if transactions else "at least once"
        print(
            f"{label:>14}: median {statistics.median(found):,.0f} posts/s "
            f"({', '.join(f'{r:,.0f}' for r in found)})"
        )
    slower = 1 - statistics.median(rates[True]) / statistics.median(rates[False])
    print(f"transactions cost {100 * slower:.1f}% of the worker's throughput")


if __name__ == "__main__":
    main()

"""Profile one worker, in process, draining generated posts from the real Kafka into FerretDB.

``make bench`` runs it after the throughput phases and keeps its report next to the figures
(``docs/performance-profile.txt``), so the table always comes with where the time goes.

    . .services/env && .venv/bin/python -m bench.profile_worker --posts 5000 [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from pyinstrument import Profiler
from pymongo import MongoClient

from bench.posts import post_bytes
from classifiers.registry import PACKAGED, Registry
from classifiers.triager import Triager
from pipeline.bus.kafka import KafkaBus
from pipeline.settings import Settings
from pipeline.store.mongo import MongoStore
from pipeline.worker import BatchStats, Worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args()
    tag = "prof" + datetime.now(UTC).strftime("%H%M%S")
    settings = Settings(
        kafka_bootstrap=os.environ["TRIAGE_KAFKA_BOOTSTRAP"],
        mongo_uri=os.environ["TRIAGE_MONGO_URI"],
        mongo_database=f"bench_{tag}",
        topic_raw=f"bench.{tag}.raw",
        topic_triaged=f"bench.{tag}.triaged",
        topic_dlq=f"bench.{tag}.dlq",
        topic_alerts=f"bench.{tag}.alerts",
        topic_spam=f"bench.{tag}.spam",
        consumer_group=f"bench-{tag}",
    )
    bus = KafkaBus(settings.kafka_bootstrap or "", partitions=settings.partitions)
    bus.ensure_topics([settings.topic_raw])
    producer = bus.producer()
    for value in post_bytes(tag, args.posts):
        producer.send(settings.topic_raw, value)
    producer.flush()
    producer.close()

    store = MongoStore(os.environ["TRIAGE_MONGO_URI"], settings.mongo_database)
    store.ensure_schema()
    worker = Worker(bus, store, Triager.from_registry(Registry(PACKAGED)), settings)
    stop = threading.Event()
    done = BatchStats()

    def count(stats: BatchStats) -> None:
        done.add(stats)
        if done.consumed >= args.posts:
            stop.set()

    profiler = Profiler(interval=0.002)
    started = time.perf_counter()
    profiler.start()
    worker.run(stop, idle_exit_s=30, on_batch=count)
    profiler.stop()
    seconds = time.perf_counter() - started
    worker.close()
    store.close()
    with MongoClient(os.environ["TRIAGE_MONGO_URI"]) as client:
        client.drop_database(settings.mongo_database)
    report = (
        f"{done.consumed} posts in {seconds:.1f}s wall ({done.consumed / seconds:.0f}/s), "
        f"load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n"
        + profiler.output_text(unicode=False, color=False)
    )
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()

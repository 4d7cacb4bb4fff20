"""Batch inference speed of every shipped model together, text preparation included.

Runs the worker's classification stage (``Triager.triage``: language, spaCy preparation, one
vectorizer call, one ``predict_proba`` per task, explanations, entities, redaction, priority) over
10,000 posts drawn from the seed corpus in both languages, in batches of the worker's default
size, on one core. Prints posts/s (by the wall clock, and per CPU second, which a machine shared
with other work does not inflate) and peak resident memory; `docs/performance.md` records them.

    .venv/bin/python bench/classifier_speed.py [POSTS] [BATCH]
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime, timedelta

from threadpoolctl import threadpool_limits

from classifiers.registry import Registry
from classifiers.training import SEED_CORPUS, read_seed
from classifiers.triager import Triager
from pipeline.heap import settle
from pipeline.records import Author, Post


def posts(n: int) -> list[Post]:
    rows = read_seed(SEED_CORPUS)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        Post(
            source="bench",
            native_id=str(i),
            author=Author(id=f"a{i % 997}", handle=f"user{i % 997}", followers=(i * 37) % 50_000),
            text=rows[i % len(rows)]["text"],
            created_at=start + timedelta(seconds=i),
        )
        for i in range(n)
    ]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    if hasattr(os, "sched_setaffinity"):  # one core, as the budget says
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    threadpool_limits(1)
    triager = Triager.from_registry(Registry())
    settle()  # as `triage worker` does once it has loaded everything
    data = posts(n)
    now = datetime(2026, 11, 2, tzinfo=UTC)
    triager.triage(data[:batch], now)  # warm-up: spaCy and the vectorizers build their caches
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(0, n, batch):
        triager.triage(data[i : i + batch], now)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started  # what a loaded machine does not inflate
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"model {triager.version}: {n:,} posts in batches of {batch:,}: {elapsed:.2f} s, "
        f"{n / elapsed:,.0f} posts/s on one core ({n / cpu:,.0f} per CPU second); "
        f"peak RSS {rss_mb:.0f} MB "
        f"({platform.machine()}, CPython {platform.python_version()})"
    )


if __name__ == "__main__":
    main()

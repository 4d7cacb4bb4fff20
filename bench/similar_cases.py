"""Similar-cases query latency at 100,000 resolved items (the bar: under 50 ms a query).

History: Banking77's train utterances, each in ten variants (an order number, a greeting, a
product or a sign-off around it, as posts have them) to 100,000 resolved items labelled with
their intent; queries: the test utterances. Times the fit, an incremental add of 1,000 items, and
``SimilarIndex.query`` with a same-language mask over all rows and the same-topic-first order (what
``SimilarCases.similar`` runs under its lock, before it reads the audit of the five it found).
Each query is timed in wall and in CPU time of the process (run with ``OMP_NUM_THREADS=1`` so the
CPU figure is one core's); on a shared machine the CPU figure is the one to read. The two-stage
query is also checked against the exact scorer (every row scored) on ``--exact`` queries.

    OMP_NUM_THREADS=1 .venv/bin/python bench/similar_cases.py [../shared/data] \
        [--items 100000] [--queries 300] [--exact 20]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import statistics
import time
from pathlib import Path

import numpy as np

from classifiers.similar import SimilarIndex

REPO = Path(__file__).resolve().parent.parent
OPENINGS = ("", "hi, ", "Hello team - ", "@acme ", "urgent: ", "quick question: ")
ENDINGS = ("", " thanks", " please help", " (order {n})", " re order #{n}", " !!", " ty")


def read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--exact", type=int, default=20)
    args = parser.parse_args()
    d = Path(args.data) / "banking77" / "banking_data"
    texts, topics = read(d / "train.csv")
    queries, _ = read(d / "test.csv")
    rng = random.Random(0)
    history, labels = [], []
    while len(history) < args.items:
        i = rng.randrange(len(texts))
        n = rng.randrange(10_000_000, 99_999_999)
        history.append(rng.choice(OPENINGS) + texts[i] + rng.choice(ENDINGS).format(n=n))
        labels.append(topics[i])
    other = len(history) // 10  # a tenth in another language, masked out by the query
    languages = np.array(["en"] * (len(history) - other) + ["zh"] * other)
    started, cpu = time.perf_counter(), time.process_time()
    index = SimilarIndex().fit(history[:-1000], labels[:-1000])
    fit_s, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    index.add(history[-1000:], labels[-1000:])
    add_s, add_cpu = time.perf_counter() - started, time.process_time() - cpu
    allowed = languages == "en"
    sample = rng.sample(queries, min(args.queries, len(queries)))
    for q in sample[:10]:  # warm caches
        index.query(q, 5, allowed, first_topic=labels[0])
    times, cpus, fast = [], [], []
    for q in sample:
        started, cpu = time.perf_counter(), time.process_time()
        fast.append(index.query(q, 5, allowed, first_topic=labels[0]))
        times.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    index.set_params(shortlist=len(index))  # every row scored: the exact answer
    same = sum(
        [nb.row for nb in index.query(q, 5, allowed, first_topic=labels[0])]
        == [nb.row for nb in found]
        for q, found in zip(sample[: args.exact], fast, strict=False)
    )
    print(f"similar cases: {len(index)} resolved items, {len(sample)} queries on "
          f"{platform.machine()} {platform.python_implementation()} {platform.python_version()},"
          f" load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"fit {fit_s:.1f}s wall, {fit_cpu:.1f}s CPU ({len(history) - 1000:,} items) · "
          f"add 1,000 items {add_s * 1000:.0f} ms wall, {add_cpu * 1000:.0f} ms CPU")
    for name, values in (("wall", times), ("CPU", cpus)):
        values.sort()
        p95 = values[int(0.95 * (len(values) - 1))]
        print(f"query ms ({name}): median {statistics.median(values):.1f} · p95 {p95:.1f}"
              f" · max {values[-1]:.1f}")
    print(f"two-stage top 5 equal to the exact top 5 on {same} of {min(args.exact, len(fast))}"
          " queries")


if __name__ == "__main__":
    main()

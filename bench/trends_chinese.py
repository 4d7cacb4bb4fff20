"""What segmenting Chinese text costs the trend detector, per 1,000-post batch.

The detector's budget is 10 ms of a 1,000-post batch's 100 ms at 10,000 posts/s
(``bench/trends_speed.py``). Chinese posts are segmented into words (jieba's dictionary, longest
match from the end, ``pipeline.trends.detector.segment_chinese``) before the token pattern runs.
Three figures, CPU ms per 1,000-post batch: ``tokenise`` over English posts (the demo sample),
over Chinese reviews (``../shared/data``, online_shopping_10_cats, cut to 140 characters like a
post), and the whole detector (count, sample, minute close and test) over the Chinese batches
at 1,000 posts a minute.

    .venv/bin/python bench/trends_chinese.py [../shared/data] [--batches 30]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.records import Post
from pipeline.trends.detector import Batch, TrendDetector, tokenise

REPO = Path(__file__).resolve().parent.parent
BATCH = 1000
START_MIN = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp() // 60)


def chinese(data: Path) -> list[str]:
    path = data / "chinese_sophonplus/datasets/online_shopping_10_cats/online_shopping_10_cats.csv"
    with path.open(encoding="utf-8") as f:
        return [row["review"].strip("\ufeff")[:140] for row in csv.DictReader(f)]


def english() -> list[str]:
    out = []
    for line in (REPO / "connectors/samples/demo_posts.jsonl").read_text().splitlines():
        try:
            out.append(Post.model_validate_json(line).text)
        except ValueError:
            continue
    return out


def per_batch(texts: list[str], batches: int) -> float:
    rng = random.Random(0)
    tokenise(rng.sample(texts, BATCH))  # the dictionary is read once, at the first Chinese batch
    start = time.process_time()
    for _ in range(batches):
        tokenise(rng.sample(texts, BATCH))
    return (time.process_time() - start) * 1000 / batches


def detector_per_batch(texts: list[str], batches: int) -> float:
    rng = random.Random(1)
    detector = TrendDetector()
    start = time.process_time()
    for b in range(batches):
        sample = rng.sample(texts, BATCH)
        detector.update_batch(
            Batch(
                ids=[f"c:{b}-{i}" for i in range(BATCH)],
                minutes=np.full(BATCH, START_MIN + b, dtype=np.int64),
                texts=sample,
                languages=["zh"] * BATCH,
                topics=["general"] * BATCH,
                sentiments=["neutral"] * BATCH,
                sources=["x"] * BATCH,
                authors=[f"x:{i}" for i in range(BATCH)],
            )
        )
    return (time.process_time() - start) * 1000 / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    data, batches = args.data, args.batches
    zh = chinese(data)
    print(f"tokenise, English demo posts: {per_batch(english(), batches):.1f} ms / 1,000 posts")
    print(f"tokenise, Chinese reviews:    {per_batch(zh, batches):.1f} ms / 1,000 posts")
    print(f"detector, Chinese reviews:    {detector_per_batch(zh, batches):.1f} ms / 1,000 posts")


if __name__ == "__main__":
    main()

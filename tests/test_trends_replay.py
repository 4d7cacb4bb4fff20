"""Replay-shaped batches (one batch spanning many minutes) are detected as the same posts live."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.trends.detector import Batch, Trend, TrendDetector
from tests.test_trends import START_MIN, WORDS, background, batch_of


def minutes_of_posts() -> list[Batch]:
    """Six quiet hours, a 20-minute burst of one hashtag, then quiet again: one batch a minute
    (two during the burst)."""
    rng = random.Random(1)
    parts = [background(START_MIN + m, rng) for m in range(6 * 60)]
    for m in range(6 * 60, 6 * 60 + 20):
        texts = [f"the app is down #blackout cannot pay {rng.choice(WORDS)}" for _ in range(4)]
        parts.append(background(START_MIN + m, rng))
        parts.append(batch_of(START_MIN + m, texts, rng, topic="product_defect"))
    parts += [background(START_MIN + m, rng) for m in range(6 * 60 + 20, 7 * 60)]
    return parts


def joined(parts: list[Batch]) -> Batch:
    return Batch(
        ids=[i for p in parts for i in p.ids],
        minutes=np.concatenate([p.minutes for p in parts]),
        texts=[t for p in parts for t in p.texts],
        languages=[x for p in parts for x in p.languages],
        topics=[x for p in parts for x in p.topics],
        sentiments=[x for p in parts for x in p.sentiments],
        sources=[x for p in parts for x in p.sources],
        authors=[x for p in parts for x in p.authors],
    )


def alerts_in_batches_of(minutes: int) -> list[Trend]:
    alerts: list[Trend] = []
    detector = TrendDetector(publish=alerts.append)
    parts = minutes_of_posts()
    first = int(parts[0].minutes[0])
    groups: dict[int, list[Batch]] = {}
    for p in parts:
        groups.setdefault((int(p.minutes[0]) - first) // minutes, []).append(p)
    for group in groups.values():
        detector.update_batch(joined(group))
    return alerts


@pytest.mark.parametrize("minutes", [5, 30])
def test_a_burst_is_found_at_the_same_minute_in_batches_of_many_minutes(minutes: int) -> None:
    live = alerts_in_batches_of(1)
    replayed = alerts_in_batches_of(minutes)
    assert [a.what for a in live] == ["#blackout"]
    assert [(a.what, a.started_at, a.detected_at, a.volume) for a in replayed] == [
        (a.what, a.started_at, a.detected_at, a.volume) for a in live
    ]

"""Trends over the whole stream: workers that each count their partitions detect as one
detector that saw every post, once per deployment (a lease holder closes each minute on the sum
of every worker's stored counts), and a worker taking the lease over goes on where it stopped."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest

from pipeline.store.interface import Store
from pipeline.trends.detector import Batch, Trend, TrendDetector
from tests.test_trends import START_MIN, WORDS, background, batch_of


def minutes_of_posts(seed: int = 1) -> list[Batch]:
    """Four quiet hours, a 16-minute burst of one hashtag, then half an hour of quiet."""
    rng = random.Random(seed)
    parts = [background(START_MIN + m, rng) for m in range(4 * 60)]
    for m in range(4 * 60, 4 * 60 + 16):
        texts = [f"the app is down #blackout cannot pay {rng.choice(WORDS)}" for _ in range(4)]
        parts.append(background(START_MIN + m, rng))
        parts.append(batch_of(START_MIN + m, texts, rng, topic="product_defect"))
    parts += [background(START_MIN + m, rng) for m in range(4 * 60 + 16, 5 * 60)]
    return parts


def split(batch: Batch, workers: int) -> list[Batch]:
    """The batch as Kafka spreads keyed posts over one partition a worker."""
    owner = np.array([zlib.crc32(i.encode()) % workers for i in batch.ids])
    return [batch.take(np.flatnonzero(owner == w)) for w in range(workers)]


def seen(alerts: list[Trend]) -> list[tuple[str, object, object, int]]:
    return [(a.what, a.started_at, a.detected_at, a.volume) for a in alerts]


def one_detector(parts: list[Batch]) -> list[Trend]:
    alerts: list[Trend] = []
    detector = TrendDetector(publish=alerts.append)
    for p in parts:
        detector.update_batch(p)
    return alerts


def test_two_workers_detect_a_split_spike_once_at_the_minute_one_detector_does(
    store: Store,
) -> None:
    parts = minutes_of_posts()
    alerts: list[Trend] = []
    workers = [
        TrendDetector(store, worker_id=f"w{i}", publish=alerts.append, shared=True)
        for i in range(2)
    ]
    spike = [p for p in parts if "#blackout" in p.texts[0]]
    assert all(sum(len(split(p, 2)[w].ids) for p in spike) > 20 for w in (0, 1))
    for p in parts:
        for worker, half in zip(workers, split(p, 2), strict=True):
            worker.update_batch(half)
            worker.flush()
    single = one_detector(parts)
    assert [a.what for a in single] == ["#blackout"]
    assert seen(alerts) == seen(single)
    assert [w.leader for w in workers] == [True, False]  # the first to ask took the lease
    # the trend is stored once, by the leader; the follower stored none of its own
    stored = store.find_records("trend_records")
    assert {d["id"] for d in stored} == {single[0].id}
    for w in workers:
        w.close()


def test_a_worker_takes_the_lease_over_and_goes_on_where_the_leader_stopped(
    store: Store,
) -> None:
    """The leader stops (its partitions go to the other worker) four hours in; the other takes
    the lease, the baseline and the counts over from the store and finds the burst at the same
    minute, without announcing again what the leader had."""
    parts = minutes_of_posts(seed=5)
    quiet, rest = parts[: 4 * 60 - 20], parts[4 * 60 - 20 :]
    alerts: list[Trend] = []
    first, second = (
        TrendDetector(store, worker_id=w, publish=alerts.append, shared=True)
        for w in ("first", "second")
    )
    for p in quiet:
        for worker, half in zip((first, second), split(p, 2), strict=True):
            worker.update_batch(half)
            worker.flush()
    assert first.leader and not second.leader and first.closed is not None
    first.close()
    for p in rest:  # every post now goes to the second worker
        second.update_batch(p)
        second.flush()
    assert second.leader
    single = one_detector(parts)
    assert [a.what for a in single] == ["#blackout"]
    assert seen(alerts) == seen(single)
    second.close()


def test_a_leader_closes_every_minute_when_the_other_worker_jumps_hours_ahead_at_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fast workers: the leader has counted its whole partition while the other has not begun;
    the other then counts all of its own before the leader looks again (its next tick). The
    leader must close every minute the other's counts let through, hours of them at once, not
    only the last hour: the skipped hours would be missing from the baseline (no test before
    it warms up) and the burst in them never tested."""
    parts = minutes_of_posts(seed=3)
    alerts: list[Trend] = []
    leader, other = (
        TrendDetector(store, worker_id=w, publish=alerts.append, shared=True)
        for w in ("leader", "other")
    )
    halves = [split(p, 2) for p in parts]
    for worker, k in ((leader, 0), (other, 1)):  # both have counted their first minute
        worker.update_batch(halves[0][k])
        worker.flush()
    for h in halves[1:]:
        leader.update_batch(h[0])
        leader.flush()
    for h in halves[1:]:
        other.update_batch(h[1])
        other.flush()
    assert leader.leader and not other.leader
    monkeypatch.setattr("pipeline.trends.detector.LEAD_EVERY_S", 0.0)  # the leader's tick
    for _ in range(len(parts) // 60 + 2):
        leader.flush()
    single = one_detector(parts)
    assert [a.what for a in single] == ["#blackout"]
    assert seen(alerts) == seen(single)
    for w in (leader, other):
        w.close()

"""`make quality`: trend alerts on CrisisLex T26 timelines mixed into a steady background.

Replays the seeded stream of ``bench/trends_stream.py`` minute by minute through the detector
(``pipeline/trends/detector.py``) and scores every alert it raises:

- an alert belongs to an event when most of the posts that carry it are that event's posts,
  otherwise it is a false alert;
- an event is detected when one of its alerts comes at most 30 minutes after its onset (the
  delay is the alert's time minus the onset; an alert before the onset counts, with a negative
  delay, if it came at most an hour before or its trend was still active an hour before);
- precision = alerts that belong to an event / all alerts; recall = events detected in 30 min /
  events; false alerts per day = false alerts / simulated days.

Writes ``crisislex_trends`` into docs/quality.json (other keys kept) and a section into
docs/quality.md (replacing only its own). ``--compare`` runs every burst test and records the
table that chose the default.

    .venv/bin/python bench/trends_quality.py ../shared/data [--compare] [--workers 2]

``--workers N`` splits each stream over N detectors by a hash of the post id (as Kafka spreads
keyed posts over N partitions, one worker each), deployed as the worker deploys them on Kafka
(``shared``: each writes its counts to one store, an embedded one in memory here, and the lease
holder tests every minute on the sum of all), and prints the score without recording it.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import splice_marked
from bench.trends_stream import Stream, batches, build, shard
from pipeline.store.embedded import EmbeddedStore
from pipeline.trends.detector import DetectorConfig, Trend, TrendDetector, parse_key

REPO = Path(__file__).resolve().parent.parent
SHARDS = 4  # independent streams, one process each
MD_BEGIN = "<!-- crisislex_trends:begin -->"
MD_END = "<!-- crisislex_trends:end -->"


@dataclass
class Alert:
    trend: Trend
    minute: int
    event: int  # -1: background
    ended: int | None = None  # the minute its trend ended, if it did


def partition(ids: list[str], workers: int) -> np.ndarray:
    """Which worker each post goes to: a stable hash of its key modulo the workers, as Kafka's
    partitioner spreads keyed posts over partitions (one partition a worker)."""
    return np.array([zlib.crc32(i.encode()) % workers for i in ids], dtype=np.int64)


def run(
    stream: Stream, data: Path, config: DetectorConfig, seed: int = 7, workers: int = 1
) -> list[Alert]:
    """Alerts of ``workers`` detectors, each fed only its partition's posts; with more than
    one, they share a store and one of them (the lease holder) tests every minute on the sum
    of their counts, as the workers of a deployment on Kafka do."""
    labels: dict[str, int] = {}
    alerts: list[Alert] = []
    if workers == 1:
        detectors = [TrendDetector(config=config)]
    else:
        store = EmbeddedStore(":memory:")
        store.ensure_schema()
        detectors = [
            TrendDetector(store, config=config, worker_id=f"w{w}", shared=True)
            for w in range(workers)
        ]

    def on_alert(trend: Trend) -> None:
        minute = int(trend.detected_at.timestamp() // 60) - 1  # the minute that closed
        # every worker's sampled posts: a post is labelled wherever its partition went
        ids = {
            s.id for d in detectors for s in d.matching([parse_key(trend.what)], minute)
        }
        votes = Counter(labels.get(i, -1) for i in ids)
        event, n = votes.most_common(1)[0] if votes else (-1, 0)
        owner = event if n * 2 > len(ids) else -1
        alerts.append(Alert(trend, int(trend.detected_at.timestamp() // 60), owner))

    for detector in detectors:
        detector.publish = on_alert
    for batch, batch_labels in batches(stream, data, seed):
        labels.update(zip(batch.ids, batch_labels.tolist(), strict=True))
        if workers == 1:
            detectors[0].update_batch(batch)
            continue
        owner = partition(batch.ids, workers)
        for w, detector in enumerate(detectors):
            detector.update_batch(batch.take(np.flatnonzero(owner == w)))
            detector.flush()
    ended = {
        t.id: t.ended_at for d in detectors for t in d.trends.values() if t.ended_at is not None
    }
    for a in alerts:
        end = ended.get(a.trend.id)
        a.ended = None if end is None else int(end.timestamp() // 60)
    return alerts


def score(shards: list[tuple[Stream, list[Alert]]]) -> dict[str, Any]:
    per_event = []
    all_alerts: list[Alert] = []
    days = 0
    for stream, alerts in shards:
        days += stream.days
        all_alerts += alerts
        for i, e in enumerate(stream.events):
            # an alert counts from an hour before the onset on, or earlier if its trend was
            # still active an hour before the onset (the trend was already in front of marketing)
            live = [
                a
                for a in alerts
                if a.event == i
                and (
                    a.minute >= e.sim_onset - 60 or a.ended is None or a.ended >= e.sim_onset - 60
                )
            ]
            first = min(live, key=lambda a: a.minute, default=None)
            per_event.append(
                {
                    "event": e.name,
                    "onset": datetime.fromtimestamp(e.onset * 60, UTC).isoformat(),
                    "delay_min": None if first is None else first.minute - e.sim_onset,
                    "alerts": sum(a.event == i for a in alerts),
                    "first_alert": None if first is None else first.trend.what,
                }
            )
    per_event.sort(key=lambda p: p["event"])
    detected = [p for p in per_event if p["delay_min"] is not None and p["delay_min"] <= 30]
    false = [a for a in all_alerts if a.event < 0]
    true = len(all_alerts) - len(false)
    delays = [p["delay_min"] for p in per_event if p["delay_min"] is not None]
    return {
        "events": len(per_event),
        "detected_within_30_min": len(detected),
        "false_alerts_per_day": round(len(false) / days, 3),
        "median_delay_min": statistics.median(delays) if delays else None,
        "precision": round(true / len(all_alerts), 3) if all_alerts else None,
        "recall": round(len(detected) / len(per_event), 3),
        "alerts": len(all_alerts),
        "false_alerts": len(false),
        "simulated_days": days,
        "per_event": per_event,
        "false_alert_examples": [a.trend.what for a in false[:10]],
    }


def run_shard(args: tuple[Path, int, int, str, int]) -> tuple[Stream, list[Alert]]:
    data, k, n, test, workers = args
    stream = shard(build(data), k, n)
    return stream, run(stream, data, DetectorConfig(test=test), seed=7 + k, workers=workers)


def evaluate(data: Path, test: str, shards: int, workers: int = 1) -> dict[str, Any]:
    with multiprocessing.get_context("fork").Pool(shards) as pool:
        parts = pool.map(run_shard, [(data, k, shards, test, workers) for k in range(shards)])
    return {"test": test, "shards": shards, "workers": workers, **score(parts)}


def write(result: dict[str, Any], compare: list[dict[str, Any]] | None, seconds: float) -> None:
    qj = REPO / "docs" / "quality.json"
    figures = json.loads(qj.read_text()) if qj.exists() else {}
    figures["crisislex_trends"] = {
        k: result[k]
        for k in ("events", "detected_within_30_min", "false_alerts_per_day", "median_delay_min")
    }
    qj.write_text(json.dumps(figures, indent=2) + "\n")
    lines = [
        MD_BEGIN,
        "## Trend alerts on CrisisLex T26 (`crisislex_trends`)",
        "",
        f"Command: `.venv/bin/python bench/trends_quality.py ../shared/data` (run by `make "
        f"quality`), {datetime.now(UTC):%Y-%m-%d}, {seconds:.0f} s. Stream: "
        f"`bench/trends_stream.py` (seeded): {result['events']} CrisisLex T26 event timelines, "
        "each moved to its own day and mixed into a TweetEval background of about 20 posts a "
        f"minute with a daily rhythm, as {result['shards']} streams of a two-day warm-up and "
        f"one event a day, {result['simulated_days']} simulated days in all. Onset: the first "
        "time an event's trailing hour reaches a fifth of its peak hour. Burst test: "
        f"`{result['test']}`.",
        "",
        f"- events detected within 30 min of onset: **{result['detected_within_30_min']} / "
        f"{result['events']}** (recall {result['recall']})",
        f"- false alerts per simulated day: **{result['false_alerts_per_day']}** "
        f"({result['false_alerts']} of {result['alerts']} alerts; precision "
        f"{result['precision']})",
        f"- median detection delay: **{result['median_delay_min']} min**",
        "",
        "| event | onset (real time) | delay (min) | alerts | first alert |",
        "|---|---|---|---|---|",
    ]
    for p in result["per_event"]:
        lines.append(
            f"| {p['event']} | {p['onset'][:16]} | {p['delay_min']} | {p['alerts']} | "
            f"{p['first_alert'] or ''} |"
        )
    if compare:
        lines += [
            "",
            "Burst tests compared on the same stream (`--compare`); the default is the one with",
            "the most events detected in 30 min at no more than 1 false alert a day:",
            "",
            "| test | detected in 30 min | false alerts / day | precision | median delay |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['test']} | {c['detected_within_30_min']} | {c['false_alerts_per_day']} | "
            f"{c['precision']} | {c['median_delay_min']} |"
            for c in compare
        ]
    lines.append(MD_END)
    splice_marked(REPO / "docs" / "quality.md", MD_BEGIN, MD_END, lines)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--") and not a.isdigit()]
    data = Path(args[0]) if args else REPO.parent / "shared" / "data"
    shards = SHARDS
    started = time.perf_counter()
    compare = None
    if "--workers" in sys.argv:
        # a deployment of N workers (one partition each): printed, not recorded as the bar
        workers = int(sys.argv[sys.argv.index("--workers") + 1])
        split = evaluate(data, DetectorConfig().test, shards, workers)
        print({k: v for k, v in split.items() if k not in ("per_event",)})
        for p in split["per_event"]:
            print(f"{p['event']:32} delay {p['delay_min']!s:>6} min  alerts {p['alerts']}")
        return
    if "--compare" in sys.argv:
        compare = [evaluate(data, test, shards) for test in ("poisson", "zscore", "negbin")]
        for c in compare:
            print(c["test"], {k: c[k] for k in ("detected_within_30_min", "false_alerts_per_day")})
    result = evaluate(data, DetectorConfig().test, shards)
    seconds = time.perf_counter() - started
    for p in result["per_event"]:
        print(f"{p['event']:32} delay {p['delay_min']!s:>6} min  alerts {p['alerts']}")
    print({k: v for k, v in result.items() if k not in ("per_event",)})
    write(result, compare, seconds)


if __name__ == "__main__":
    main()

"""A seeded stream for the trend benchmarks: CrisisLex T26 timelines over a steady background.

Background: tweets from TweetEval (real tweets on every subject), drawn with replacement at a rate
with a daily rhythm (quiet at night, busy in the evening), a day-to-day level and 10-minute
overdispersion, so that it is not an easy Poisson stream. Topic, language and sentiment labels are
drawn from the same mix for background and event posts, so an event can only be found by what its
posts say.

Events: the time stamps of every CrisisLex T26 event (``*-tweetids_entire_period.csv``), each
joined to its labelled text by tweet id where it has one, otherwise given a labelled text of the
same event (seeded draw). Each event is moved, keeping its time of day, so that its onset lands on
its own day of the simulated stream, after two days of background only; its posts from 6 h before
to 18 h after its onset are replayed. ``shard`` splits the events over several such streams (each
with its own warm-up and seed) so that the benchmark can use several cores.

Onset: the first time the event's own trailing 60-minute count reaches a fifth of its peak
trailing 60-minute count (the point where the event is clearly under way, for sudden and for
progressive events alike).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pipeline.trends.detector import Batch

START = datetime(2026, 1, 5, tzinfo=UTC)
WARMUP_DAYS = 2
SPACING_DAYS = 1
BEFORE_MIN = 6 * 60
AFTER_MIN = 18 * 60
ONSET_SHARE = 0.2
TOPICS = ("product", "billing", "delivery", "account", "praise", "other")
TOPIC_P = (0.25, 0.15, 0.15, 0.1, 0.15, 0.2)
LANGS = ("en", "es", "fr", "de")
LANG_P = (0.85, 0.07, 0.05, 0.03)
SENTIMENTS = ("negative", "neutral", "positive")


@dataclass
class Event:
    name: str
    minutes: np.ndarray  # real minute of each post (epoch minutes), sorted
    texts: list[str]
    onset: int  # real epoch minute
    sim_onset: int  # simulated epoch minute

    def shift(self) -> int:
        return self.sim_onset - self.onset


def read_event(folder: Path, rng: random.Random) -> Event | None:
    ids_file = next(folder.glob("*-tweetids_entire_period.csv"), None)
    labelled_file = next(folder.glob("*-tweets_labeled.csv"), None)
    if ids_file is None or labelled_file is None:
        return None
    with labelled_file.open(encoding="utf-8", errors="replace") as fh:
        rows = list(csv.reader(fh))[1:]
    labelled = {r[0].strip(): r[1] for r in rows if len(r) > 1}
    pool = list(labelled.values())
    stamps: list[tuple[int, str]] = []
    with ids_file.open(encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row in reader:
            at = datetime.strptime(row[0].strip(), "%a %b %d %H:%M:%S %z %Y")
            tid = row[1].strip()
            stamps.append((int(at.timestamp() // 60), labelled.get(tid) or rng.choice(pool)))
    stamps.sort()
    minutes = np.array([m for m, _ in stamps], dtype=np.int64)
    return Event(folder.name, minutes, [t for _, t in stamps], onset_of(minutes), 0)


def onset_of(minutes: np.ndarray) -> int:
    """First minute whose trailing 60-minute count reaches ONSET_SHARE of the peak one."""
    lo = int(minutes.min())
    per_min = np.bincount(minutes - lo)
    trailing = np.convolve(per_min, np.ones(60, dtype=int))[: len(per_min)]
    first = int(np.flatnonzero(trailing >= ONSET_SHARE * trailing.max())[0])
    return lo + first


def background_texts(data: Path) -> list[str]:
    texts: list[str] = []
    for f in sorted((data / "tweeteval" / "datasets").glob("*/*_text.txt")):
        texts.extend(line.strip() for line in f.open(encoding="utf-8") if line.strip())
    return texts


@dataclass
class Stream:
    events: list[Event]
    days: int
    rate_per_min: float

    @property
    def start_minute(self) -> int:
        return int(START.timestamp() // 60)


def build(data: Path, seed: int = 7, rate_per_min: float = 20.0) -> Stream:
    rng = random.Random(seed)
    root = data / "crisislex" / "data" / "CrisisLexT26"
    events = [e for f in sorted(root.iterdir()) if f.is_dir() and (e := read_event(f, rng))]
    return place(Stream(events, 0, rate_per_min))


def place(stream: Stream) -> Stream:
    start = int(START.timestamp() // 60)
    for i, e in enumerate(stream.events):
        day = start + (WARMUP_DAYS + SPACING_DAYS * i) * 1440
        e.sim_onset = day + e.onset % 1440
    stream.days = WARMUP_DAYS + SPACING_DAYS * len(stream.events) + 1
    return stream


def shard(stream: Stream, k: int, n: int) -> Stream:
    """The ``k``-th of ``n`` streams that share the events out round-robin."""
    return place(Stream(stream.events[k::n], 0, stream.rate_per_min))


def batches(stream: Stream, data: Path, seed: int = 7) -> Iterator[tuple[Batch, np.ndarray]]:
    """One batch per simulated minute, and for each post whether it is an event post (its
    event's index) or background (-1)."""
    rng = np.random.default_rng(seed)
    texts = background_texts(data)
    start = stream.start_minute
    total = stream.days * 1440
    hours = (np.arange(total) // 60) % 24
    rhythm = 1 + 0.6 * np.sin(2 * np.pi * (hours - 12) / 24)
    level = np.repeat(rng.lognormal(0, 0.15, stream.days), 1440)
    burst = np.repeat(rng.gamma(20, 1 / 20, total // 10 + 1), 10)[:total]
    counts = rng.poisson(stream.rate_per_min * rhythm * level * burst)
    planned: dict[int, list[tuple[str, int]]] = {}
    for i, e in enumerate(stream.events):
        shift = e.shift()
        keep = (e.minutes >= e.onset - BEFORE_MIN) & (e.minutes < e.onset + AFTER_MIN)
        for m, t in zip(e.minutes[keep].tolist(), np.array(e.texts, dtype=object)[keep],
                        strict=True):
            planned.setdefault(m + shift, []).append((str(t), i))
    n_texts = len(texts)
    serial = 0
    for offset in range(total):
        minute = start + offset
        bg = [texts[j] for j in rng.integers(0, n_texts, counts[offset])]
        ev = planned.get(minute, [])
        all_texts = bg + [t for t, _ in ev]
        n = len(all_texts)
        if n == 0:
            continue
        labels = np.array([-1] * len(bg) + [i for _, i in ev])
        ids = [f"sim:{serial + k}" for k in range(n)]
        serial += n
        batch = Batch(
            ids=ids,
            minutes=np.full(n, minute, dtype=np.int64),
            texts=all_texts,
            # plain str, as triaged posts have: stored trends carry them as keys
            languages=rng.choice(LANGS, n, p=LANG_P).tolist(),
            topics=rng.choice(TOPICS, n, p=TOPIC_P).tolist(),
            sentiments=rng.choice(SENTIMENTS, n).tolist(),
            sources=["x"] * n,
            authors=[f"x:{a}" for a in rng.zipf(1.5, n) % 50_000],
        )
        yield batch, labels

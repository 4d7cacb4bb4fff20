"""Streaming trend and spike detection over triaged batches.

Each batch is counted once, vectorised: one regular-expression pass over the batch's joined
(PII-redacted) text gives terms, hashtags and mentions, one ``zip`` gives the two-word phrases, and
the topic, language, source and sentiment columns are counted alongside. Counts go into per-minute
buckets keyed by the post's minute; sliding windows of 1, 15 and 60 minutes are running sums of
those buckets, and the last 90 minutes are kept (reports over longer spans read the stored
buckets, ``pipeline/trends/report.py``). A batch that spans many minutes
(a replay's, a worker catching up) is counted minute by minute in time order, each minute closed
before the next is counted, so it is tested as the same posts arriving live would be.

When a minute closes the detector tests every key that is frequent enough in the last 15 minutes
against its baseline. The baseline of a key is its share of all posts, an EWMA over closed hours
(so a term that is always common is never news); the expected count is that share times the
posts of the window, which carries the stream's daily rhythm for free. The volume of the whole
stream has its own baseline: one EWMA per hour of the day, learnt across days. A key bursts when
its count is unlikely under a Poisson law with that expectation (the test chosen by measurement,
see ``bench/trends_quality.py``), and is both frequent and several times what is expected. Keys
never seen before (new phrases) get a floor share of one post in the last day.

Keys that burst together because the same posts carry them ("costa", "rica", "earthquake") are
one trend: a sample of recent posts is kept per minute and a key joins an active trend when the
posts that carry it overlap. A new trend is an alert (published to ``trends.alerts`` and stored);
its status then moves from emerging to peaking to fading, and it ends when its key is back near
its baseline.

State is persisted in the store so it survives a restart and merges across workers: every worker
writes its own count bucket per minute (``trend_buckets``, id ``<worker>:<minute>``), and a reader
sums the buckets of all workers. A restarted worker loads the last 90 minutes of buckets as a
base it never writes back, so no count is written twice. A worker crash loses at most the counts
of the minute it was in (posts are never lost; only their trend counts), and the hour-level
baseline is saved in ``trend_state`` at each hour and at close. Buckets are written when the
stream reaches a new minute, so late posts of closed minutes since then are lost with a crash
too.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import random
import re
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from itertools import chain, pairwise
from operator import itemgetter
from typing import Any, Literal

import numpy as np
from pydantic import Field
from scipy import stats

from classifiers.entities import redact_references
from classifiers.evidence import HAN, words
from pipeline.records import AwareDatetime, Record, TriagedPost
from pipeline.store.interface import Store

Key = str | tuple[str, str]
EMPTY: Counter[Key] = Counter()  # a minute without counts (read only)
Status = Literal["emerging", "peaking", "fading", "ended"]

WINDOWS_MIN = (1, 15, 60)
KEEP_MIN = 90  # minutes of counts held: the hourly test's hour, and late posts' slack
DETECT_WINDOW = 15
SAMPLE_PER_MINUTE = 2000
PERSIST_TERMS_PER_MINUTE = 5000
BASELINE_KEYS = 50_000
HOUR_CANDIDATE = 2  # a key's least count in 15 minutes for the hourly test to look at it
HOUR_PREFILTER = 0.05  # the quarter hour's p-value under which a key gets the hourly test
LOAD_LIMIT = 1_000_000  # records read at once: a restart's day of buckets of many workers
# A deployment's workers (``shared``): one leader closes each minute on every worker's counts.
LEASE = "trend-detector"
LEASE_S = 120  # wall seconds a leader holds the lease, and a worker's progress counts as live
GRACE_MIN = 1  # minutes every live worker must be past a minute before it is closed
LEAD_EVERY_S = 5.0  # between new minutes, how often the leader looks for more to close
# Minutes a leader closes at once (one read of their buckets); more wait for its next call, made
# at once: the lease (``LEASE_S``) is renewed between calls, however far behind the leader is.
CATCH_UP_MIN = 60

URL = re.compile(r"https?://\S+|www\.\S+")
# A run of Chinese characters: written without spaces, so the token pattern would take a whole
# clause for one word and no Chinese word would ever add up; each run is segmented into words
# first (``segment_chinese``).
HAN_RUNS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
TOKEN = re.compile(r"[#@]?\w[\w'-]*\w|[#@]?\w")
SEP = "ZZSEPZZ"
# Of keys equally surprising, the one a reader recognises first names the trend.
KIND_ORDER = {"hashtag": 0, "product": 1, "mention": 2, "phrase": 3, "term": 4, "topic": 5}
STOPWORD_TEXT = """a about after all also am an and any are as at be been but by can could did
    do does for from get got had has have he her him his how i if in into is it its it's just like
    me more my
    no not now of on one or our out over rt so some than that that's the their them then there
    these they this to too up us very was we were what when where which who will with would you
    your i'm don't can't im dont u el la de en y que es los las por un una del se con para al
    lo le les des et du il est pas"""
STOPWORDS = frozenset(STOPWORD_TEXT.split())

log = logging.getLogger(__name__)


def key_name(key: Key) -> str:
    """How people read a key: ``#tag``, ``@mention``, ``word``, ``two words``, ``topic=billing``."""
    return " ".join(key) if isinstance(key, tuple) else key


def key_kind(key: Key) -> str:
    if isinstance(key, tuple):
        return "phrase"
    if key == "all":
        return "volume"
    if "=" in key:
        return key.split("=", 1)[0]
    return {"#": "hashtag", "@": "mention"}.get(key[0], "term")


def is_meta(key: Key) -> bool:
    """Keys about the posts (topic, language, source, sentiment, volume), not their words."""
    return isinstance(key, str) and ("=" in key or key == "all")


def parse_key(name: str) -> Key:
    """The key a stored name stands for, its words interned as ``tokenise`` interns them: the
    leader holds every worker's counts of the last minutes beside its own, and read from the
    store each word would otherwise be one more copy per minute."""
    if " " in name:
        first, second = name.split(" ", 1)
        return (sys.intern(first), sys.intern(second))
    return sys.intern(name)


def interesting(key: Key) -> bool:
    """Keys worth testing: not stopwords, numbers or single letters."""
    if isinstance(key, tuple):
        a, b = key
        return not (a in STOPWORDS and b in STOPWORDS) and len(a + b) > (2 if HAN.match(a) else 4)
    if "=" in key or key == "all":
        return not key.startswith("sent=")
    if HAN.match(key):  # a Chinese word of two characters is a word ("电池", "退款")
        return len(key) > 1
    return len(key) > 2 and key not in STOPWORDS and not key.isdigit()


# ------------------------------------------------------------------ records


class AuthorCount(Record):
    author: str
    posts: int


class SamplePost(Record):
    id: str
    text: str
    author: str
    sentiment: str


class Trend(Record):
    """Something rising: what, since when, how fast, how big, what people say and feel."""

    id: str
    what: str
    kind: str
    related: list[str] = Field(default_factory=list)
    started_at: AwareDatetime
    detected_at: AwareDatetime
    updated_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    growth: float = Field(description="posts in the last 15 minutes over the expected count")
    volume: int = Field(description="posts in the last 15 minutes")
    peak_volume: int
    expected: float
    p_value: float
    sample_posts: list[SamplePost]
    sentiment_mix: dict[str, int]
    top_authors: list[AuthorCount]
    status: Status
    detector: str = Field(description="the test and window that found it: 'poisson/1h'")


@dataclass
class Batch:
    """The columns of a batch that the detector reads, one entry per non-spam post."""

    ids: list[str]
    minutes: np.ndarray
    texts: list[str]
    languages: list[str]
    topics: list[str]
    sentiments: list[str]
    sources: list[str]
    authors: list[str]
    products: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_triaged(cls, items: Sequence[TriagedPost], now: datetime) -> Batch:
        kept = [t for t in items if not t.is_spam]
        cap = now.timestamp()
        return cls(
            ids=[t.id for t in kept],
            minutes=(
                np.minimum(np.array([t.post.created_at.timestamp() for t in kept]), cap) // 60
            ).astype(np.int64),
            # spike samples go to marketing: without order, parcel and ticket numbers
            texts=[
                redact_references(t.redacted_text, ((e.kind, e.text) for e in t.entities))
                for t in kept
            ],
            languages=[t.language for t in kept],
            topics=[t.topic.label for t in kept],
            sentiments=[t.sentiment.label for t in kept],
            sources=[t.post.source for t in kept],
            authors=[f"{t.post.source}:{t.post.author.id}" for t in kept],
            products=[[e.text.lower() for e in t.entities if e.kind == "product"] for t in kept],
        )

    def take(self, idx: np.ndarray) -> Batch:
        pick = idx.tolist()
        return Batch(
            ids=[self.ids[i] for i in pick],
            minutes=self.minutes[idx],
            texts=[self.texts[i] for i in pick],
            languages=[self.languages[i] for i in pick],
            topics=[self.topics[i] for i in pick],
            sentiments=[self.sentiments[i] for i in pick],
            sources=[self.sources[i] for i in pick],
            authors=[self.authors[i] for i in pick],
            products=[self.products[i] for i in pick] if self.products else [],
        )


@dataclass
class Sampled:
    """A recent post kept to describe trends; its keys are built only if a trend asks."""

    id: str
    minute: int
    tokens: list[str]
    meta: tuple[str, str, str]  # topic, language, source
    text: str
    author: str
    sentiment: str

    @cached_property
    def keys(self) -> frozenset[Key]:
        return post_keys(self.tokens, *self.meta)


def segment_chinese(text: str) -> str:
    """``text`` with its Chinese words set apart by spaces, by the segmenter evidence uses
    (jieba's dictionary, longest match from the end: ``classifiers.evidence.words``), so that a
    spike of "热水器 漏水" posts counts 热水器 and 漏水 like any English word."""
    return HAN_RUNS.sub(lambda m: f" {' '.join(words(m.group(), 'zh'))} ", text)


def tokenise(texts: Sequence[str]) -> list[list[str]]:
    """Each post's tokens, from one regular-expression pass over the whole batch: the separator
    is upper case, so no lower-cased post can contain it. Tokens are interned: a word is a key of
    up to 90 minute counters, and each would otherwise hold its own copy.
    Chinese text is segmented into words first; a batch without any pays one search for it."""
    joined = URL.sub(" ", f" {SEP} ".join([t.lower() for t in texts]))
    if HAN.search(joined):
        joined = segment_chinese(joined)
    tokens = list(map(sys.intern, TOKEN.findall(joined)))
    out: list[list[str]] = []
    start = 0
    for _ in range(len(texts) - 1):
        end = tokens.index(SEP, start)
        out.append(tokens[start:end])
        start = end + 1
    out.append(tokens[start:])
    return out


def count_into(counts: Counter[Key], batch: Batch, tokens: Sequence[list[str]]) -> None:
    """Add every key of ``batch`` (whose posts' tokens are ``tokens``) to ``counts``, in place:
    each ``update`` from an iterable is one C-level loop, with no per-batch counter to merge."""
    words = [word_keys(t) for t in tokens]
    counts.update(chain.from_iterable(words))
    counts.update(chain.from_iterable(set(pairwise(t)) for t in tokens))
    counts.update(map("topic=".__add__, batch.topics))
    counts.update(map("lang=".__add__, batch.languages))
    counts.update(map("source=".__add__, batch.sources))
    counts.update(f"sent={t}|{s}" for t, s in zip(batch.topics, batch.sentiments, strict=True))
    counts.update(map("product=".__add__, chain.from_iterable(batch.products)))
    counts["all"] += len(batch.ids)


def word_keys(tokens: list[str]) -> set[Key]:
    """A post's word keys: its tokens, and a hashtag's word as a term too (``#bangladesh`` and
    ``bangladesh`` are one story, written both ways)."""
    keys: set[Key] = set(tokens)
    keys.update([t[1:] for t in tokens if t[0] == "#" and len(t) > 1])
    keys.discard("all")  # the key "all" counts posts: the word must not add to it
    return keys


def post_keys(tokens: list[str], topic: str, language: str, source: str) -> frozenset[Key]:
    keys: set[Key] = word_keys(tokens)
    keys.update(pairwise(tokens))
    keys.update(("topic=" + topic, "lang=" + language, "source=" + source, "all"))
    return frozenset(keys)


# ------------------------------------------------------------------ tests


def poisson_p(x: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return np.asarray(stats.poisson.sf(x - 1, lam))


def zscore_p(x: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return np.asarray(stats.norm.sf((x - lam) / np.sqrt(lam)))


def negbin_p(x: np.ndarray, lam: np.ndarray, r: float = 5.0) -> np.ndarray:
    """Negative binomial with variance lam + lam^2 / r: tolerates an overdispersed stream."""
    return np.asarray(stats.nbinom.sf(x - 1, r, r / (r + lam)))


TESTS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "poisson": poisson_p,
    "zscore": zscore_p,
    "negbin": negbin_p,
}


@dataclass(frozen=True)
class DetectorConfig:
    test: str = "poisson"
    alpha: float = 1e-7
    min_count: int = 5
    min_ratio: float = 4.0
    hourly_beta: float = 0.05
    seasonal_gamma: float = 0.3
    warmup_hours: int = 3
    end_ratio: float = 1.5
    end_after_min: int = 60
    # the slower test, on the trailing hour: events that build up over hours, a few posts every
    # quarter, never stand out in 15 minutes
    hour_alpha: float = 1e-9
    hour_min_count: int = 6
    # Keys the baseline knows (at least one post expected in the hour) are a few hundred, rare
    # and new ones many thousands: each family gets its own threshold, as a Bonferroni bound
    # would, so a known word rising tenfold is not held to the bar set for chance among rare ones
    hour_alpha_known: float = 1e-7


@dataclass
class Active:
    trend: Trend
    key: Key
    keys: set[Key]
    low_since: int | None = None


# ------------------------------------------------------------------ detector


class TrendDetector:
    """Counts every batch, tests keys when a minute closes, and keeps trends up to date."""

    def __init__(
        self,
        store: Store | None = None,
        config: DetectorConfig | None = None,
        worker_id: str | None = None,
        publish: Callable[[Trend], None] | None = None,
        seed: int = 0,
        shared: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if shared and store is None:
            raise ValueError("a shared detector needs the store its workers share")
        self.store = store
        self.shared = shared
        self.clock = clock or (lambda: datetime.now(UTC))
        self.leader = False  # shared: whether this worker holds the lease and closes minutes
        self.config = config or DetectorConfig()
        self.test = TESTS[self.config.test]
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.publish = publish
        self.rng = random.Random(seed)
        self.own: dict[int, Counter[Key]] = {}  # this session's minute counts (persisted)
        self.base: dict[int, Counter[Key]] = {}  # counts loaded from the store (never rewritten)
        # shared: every worker's counts of the minutes the leader closed, as read from the store
        self.merged: dict[int, Counter[Key]] = {}
        self.samples: dict[int, list[Sampled]] = {}
        self.shares: dict[Key, float] = {}
        self.share_weight = 0.0
        self.share_scale = 1.0
        self.hours_seen = 0
        self.seasonal: list[float | None] = [None] * 24
        self.hourly_volume = 0.0
        self.watermark: int | None = None  # the newest minute counted
        self.closed: int | None = None  # the newest minute closed (tested)
        self.window15: Counter[Key] = Counter()  # the 15 minutes up to ``closed``
        self.dirty: set[int] = set()
        self.flushed_at: int | None = None  # the newest minute when buckets were last written
        self.revisions: dict[int, int] = {}  # the next revision of each own bucket
        self.active: dict[str, Active] = {}
        self.trends: dict[str, Trend] = {}  # the newest version of every trend, by id
        self._pending_trends: dict[str, Trend] = {}
        self._changed: list[Trend] = []  # shared: closed in a flush that has not returned yet
        self._led_at = 0.0  # shared: when (monotonic) this worker last tried to lead
        self._behind = False  # shared: the leader left minutes to close for its next call
        self.state_dirty = False
        if store is not None and not shared:
            self.load()

    # ---------------------------------------------------------- counting

    def update(self, items: Sequence[TriagedPost], now: datetime) -> list[Trend]:
        """The worker's hook: count one triaged batch; returns trends created or changed."""
        return self.update_batch(Batch.from_triaged(items, now))

    def update_batch(self, batch: Batch) -> list[Trend]:
        """Count the batch minute by minute in time order, closing (and testing) each minute
        the stream moves past before the next is counted: a replay's batch that spans many
        minutes is tested as the same posts arriving live would be, not closed uncounted."""
        if not batch.ids:
            return []
        changed: list[Trend] = []
        minutes = batch.minutes
        floor = (self.watermark if self.watermark is not None else int(minutes.max())) - 59
        tokens = tokenise(batch.texts)
        for minute in np.unique(minutes).tolist():
            if minute < floor:
                continue  # over an hour late: too late to count
            if self.watermark is not None and not self.shared:  # shared: closed in ``flush``
                for closing in range(max(self.watermark, minute - 61), minute):
                    changed.extend(self._close_minute(closing))
            if self.watermark is None or minute > self.watermark:
                self.watermark = minute
            self._count(batch, tokens, np.flatnonzero(minutes == minute), minute)
        return changed

    def _count(self, batch: Batch, tokens: list[list[str]], idx: np.ndarray, minute: int) -> None:
        """Count the posts at ``idx`` (all of ``minute``) into the minute, and into the window
        too if that minute is already in it (late posts)."""
        whole = idx.size == len(batch.ids)
        part = batch if whole else batch.take(idx)
        part_tokens = tokens if whole else [tokens[i] for i in idx.tolist()]
        own = self.own.setdefault(minute, Counter())
        closed = self.closed
        if not self.shared and closed is not None and closed - DETECT_WINDOW < minute <= closed:
            late: Counter[Key] = Counter()
            count_into(late, part, part_tokens)
            own.update(late)
            self.window15.update(late)
        else:
            count_into(own, part, part_tokens)
        if self.store is not None:
            self.dirty.add(minute)
        self._sample(part, part_tokens, minute)

    def _sample(self, part: Batch, tokens: Sequence[list[str]], minute: int) -> None:
        bucket = self.samples.setdefault(minute, [])
        room = SAMPLE_PER_MINUTE - len(bucket)
        n = len(part.ids)
        take = range(n) if n <= max(room, 0) else self.rng.sample(range(n), max(room, 0))
        for i in take:
            bucket.append(
                Sampled(
                    id=part.ids[i],
                    minute=minute,
                    tokens=tokens[i],
                    meta=(part.topics[i], part.languages[i], part.sources[i]),
                    text=part.texts[i][:280],
                    author=part.authors[i],
                    sentiment=part.sentiments[i],
                )
            )

    def counts(self, minute: int) -> Counter[Key]:
        """One minute's counts, this worker's and the loaded ones (read only: may be shared);
        a shared detector's are every worker's, read when the minute closed."""
        if self.shared:
            return self.merged.get(minute, EMPTY)
        own, base = self.own.get(minute), self.base.get(minute)
        if base is None or own is None:
            return own if own is not None else base if base is not None else Counter()
        return own + base

    def window(self, minutes: int, end: int | None = None) -> Counter[Key]:
        """Counts over the ``minutes`` minutes up to and including ``end`` (default: newest).

        At most ``KEEP_MIN`` minutes, what the tests need: longer spans are the reports', summed
        from the stored buckets, so a day of roll-ups held here served nothing else."""
        if minutes > KEEP_MIN:
            raise ValueError(f"a window of at most {KEEP_MIN} minutes, not {minutes}")
        end = self.watermark if end is None else end
        total: Counter[Key] = Counter()
        if end is None:
            return total
        for m in range(end - minutes + 1, end + 1):
            total.update(self.counts(m))
        return total

    def windows(self) -> dict[str, Counter[Key]]:
        """The sliding windows (1 min, 15 min, 1 h) ending at the newest minute."""
        return {f"{w}m": self.window(w) for w in WINDOWS_MIN}

    # ---------------------------------------------------------- one detector per deployment

    def _advance(self, minute: int) -> None:
        """A shared detector's stream reached ``minute``, a new one: write this worker's buckets
        of the minutes before it, and say how far it is (two store calls a new minute)."""
        assert self.store is not None
        self._write_buckets(minute - 1)
        self.store.put_record(
            "trend_progress", self.worker_id, {"at": self.clock(), "watermark": minute}
        )
        for old in [m for m in self.own if m < minute - KEEP_MIN and m not in self.dirty]:
            del self.own[old]
        for old in [m for m in self.revisions if m < minute - KEEP_MIN and m not in self.own]:
            del self.revisions[old]

    def _lead(self, minute: int) -> list[Trend]:
        """If this worker holds the lease (or takes it), close every minute each live worker
        (progress written in the last ``LEASE_S``) is past by ``GRACE_MIN``, on the sum of
        every worker's bucket of it: two store calls, and one read of buckets for up to
        ``CATCH_UP_MIN`` minutes closed; none a post. Runs at each new minute and, between them,
        at most every ``LEAD_EVERY_S`` (also when a poll brought nothing): a leader whose own
        partitions went quiet goes on closing what the others' counts let through. No minute is
        skipped, however far the slowest worker moved since the last call (fast workers whose
        batches span an hour of post time each): a skipped minute's counts, and the hour it
        closes, would be missing from the baseline, and a spike in it never tested. A leader
        further behind than ``CATCH_UP_MIN`` goes on at its next call, without waiting. Safe to
        run again after a store failure: closing goes on from the last minute closed."""
        assert self.store is not None
        self._led_at = time.monotonic()
        self._behind = False
        now = self.clock()
        until = now + timedelta(seconds=LEASE_S)
        state = {"closed": self.closed} if self.leader else None
        before = self.store.take_lease(LEASE, self.worker_id, until, now, state)
        if before is None:
            if self.leader:
                self._step_down()
            # kept for a take-over: the quarter hour the leader is about to close
            for old in [m for m in self.samples if m < minute - DETECT_WINDOW - 2 - GRACE_MIN]:
                del self.samples[old]
            return []
        live = self.store.find_records(
            "trend_progress", limit=LOAD_LIMIT, since=now - timedelta(seconds=LEASE_S)
        )
        # every live worker has written its buckets of the minutes before its watermark
        upto = (min(int(p["watermark"]) for p in live) if live else minute) - 1 - GRACE_MIN
        if not self.leader or before.holder != self.worker_id:
            # the first leader of a deployment starts where the slowest live worker lets it
            self._take_over(before.state.get("closed"), upto - 1)
        assert self.closed is not None
        # over a day behind (the deployment stopped for that long): that day is all it loads
        start = max(self.closed + 1, upto - 1440)
        stop = min(upto, start + CATCH_UP_MIN - 1)
        if not live or stop < start:
            return []
        self._behind = stop < upto
        found = self.store.find_records(
            "trend_buckets", limit=LOAD_LIMIT, since=minute_time(start), until=minute_time(stop + 1)
        )
        merged: dict[int, Counter[Key]] = {}
        for doc in newest_revisions(found):
            merged.setdefault(int(doc["minute"]), Counter()).update(
                {parse_key(k): int(c) for k, c in zip(doc["keys"], doc["counts"], strict=True)}
            )
        changed: list[Trend] = []
        for m in range(start, stop + 1):
            self.merged[m] = merged.get(m, Counter())
            changed.extend(self._close_minute(m))
        return changed

    def _take_over(self, closed: int | None, first: int) -> None:
        """Become the deployment's detector: from the store, the baseline, the counts of the
        last 90 minutes up to the last minute the previous leader closed (``first`` for the first
        leader of a deployment), and the active trends."""
        self._forget()
        self.leader = True
        self.load(first if closed is None else closed)
        log.info(
            "trends: %s leads the deployment's detector from minute %s (%d minutes of counts,"
            " %d baseline keys, %d active trends loaded)",
            self.worker_id, self.closed, len(self.merged), len(self.shares), len(self.active),
        )

    def _step_down(self) -> None:
        """Another worker took the lease (this one was too slow to renew it): its detection
        state goes, to be read again from the store if it leads again."""
        self._forget()
        self.leader = False
        log.info("trends: %s no longer leads the detector (another worker took the lease)",
                 self.worker_id)

    def _forget(self) -> None:
        self.merged, self.active = {}, {}
        self.shares, self.share_weight, self.share_scale = {}, 0.0, 1.0
        self.hours_seen, self.seasonal, self.hourly_volume = 0, [None] * 24, 0.0
        self.closed, self.window15 = None, Counter()

    # ---------------------------------------------------------- minute and hour close

    def _close_minute(self, minute: int) -> list[Trend]:
        """``minute`` is complete: slide the 15-minute window onto it, test, and at the end of
        an hour move the baseline."""
        if self.closed == minute - 1:
            self.window15.update(self.counts(minute))
            self.window15.subtract(self.counts(minute - DETECT_WINDOW))
        else:
            self.window15 = self.window(DETECT_WINDOW, minute)
        if minute % 60 == 0:
            self.window15 = +self.window15  # drop the keys that left
        self.closed = minute
        changed = self._test(minute)
        if (minute + 1) % 60 == 0:
            self._close_hour(minute // 60)
        for old in [m for m in self.merged if m < minute - KEEP_MIN]:
            del self.merged[old]
        for counts in (self.own, self.base):
            for old in [m for m in counts if m < minute - KEEP_MIN and m not in self.dirty]:
                del counts[old]  # a minute not yet written waits for the next flush
        for old in [m for m in self.revisions if m < minute - KEEP_MIN and m not in self.own]:
            del self.revisions[old]  # over an hour late: never counted, so never rewritten
        for old in [m for m in self.samples if m <= minute - DETECT_WINDOW]:
            del self.samples[old]
        return changed

    def _close_hour(self, hour: int) -> None:
        total: Counter[Key] = Counter()
        for m in range(hour * 60, hour * 60 + 60):
            total.update(self.counts(m))
        n = total.get("all", 0)
        if n == 0:
            return
        beta = self.config.hourly_beta
        keep = 1 - beta
        # every share decays by ``keep`` an hour: kept as one scale, not a pass over every key
        self.share_scale *= keep
        add = beta / n / self.share_scale
        shares = self.shares
        for k, c in total.items():
            shares[k] = shares.get(k, 0.0) + c * add
        if self.share_scale < 1e-6:
            self.shares = {k: v * self.share_scale for k, v in shares.items()}
            self.share_scale = 1.0
        if len(self.shares) > BASELINE_KEYS * 5 // 4:
            top = sorted(self.shares.items(), key=lambda kv: -kv[1])[:BASELINE_KEYS]
            self.shares = dict(top)
        self.share_weight = self.share_weight * keep + beta
        self.hours_seen += 1
        slot = hour % 24
        prev = self.seasonal[slot]
        g = self.config.seasonal_gamma
        self.seasonal[slot] = float(n) if prev is None else (1 - g) * prev + g * n
        self.hourly_volume = n if self.hourly_volume == 0 else 0.9 * self.hourly_volume + 0.1 * n
        self.state_dirty = True

    # ---------------------------------------------------------- the test

    def expected(self, keys: Sequence[Key], n_window: int) -> np.ndarray:
        floor = 1.0 / max(self.hourly_volume * 24, 1.0)
        w = self.share_scale / max(self.share_weight, 1e-9)
        shares = np.array([self.shares.get(k, 0.0) * w for k in keys])
        return np.maximum(shares, floor) * n_window

    def _test(self, minute: int) -> list[Trend]:
        cfg = self.config
        window = self.window15
        n = window.get("all", 0)
        changed = self._refresh_active(minute, window, n)
        if self.hours_seen < cfg.warmup_hours or n == 0:
            return changed
        # a key can only have become a burst if it was counted in the minute that closed
        candidates = [
            k for k in self.counts(minute) if window[k] >= HOUR_CANDIDATE and interesting(k)
        ]
        claimed = {k for a in self.active.values() for k in a.keys}
        volume = self._volume_expected(minute)
        candidates = [
            k for k in candidates if k not in claimed and (k != "all" or volume is not None)
        ]
        if not candidates:
            return changed
        x = np.array([window[k] for k in candidates], dtype=float)
        lam = self.expected(candidates, n)
        if volume is not None and "all" in candidates:
            lam[candidates.index("all")] = volume
        p = self.test(x, lam)
        strong = x >= cfg.min_ratio * lam
        hits = (p < cfg.alpha) & (x >= cfg.min_count) & strong
        hourly = np.zeros(len(candidates), dtype=bool)  # found by the hourly test
        # the hourly test looks only at terms already unusual in the quarter hour
        slow = [
            i for i in np.flatnonzero(~hits & (p < HOUR_PREFILTER) & strong)
            if candidates[i] != "all"
        ]
        if slow:
            hour = [self.counts(m) for m in range(minute - 59, minute + 1)]
            x_hour = np.array([sum(c.get(candidates[i], 0) for c in hour) for i in slow], float)
            lam_hour = self.expected([candidates[i] for i in slow], sum(c["all"] for c in hour))
            p_hour = self.test(x_hour, lam_hour)
            alpha = np.where(lam_hour >= 1.0, cfg.hour_alpha_known, cfg.hour_alpha)
            slow_hits = (
                (p_hour < alpha)
                & (x_hour >= cfg.hour_min_count)
                & (x_hour >= cfg.min_ratio * lam_hour)
            )
            found = np.array(slow)[slow_hits]
            p[found] = p_hour[slow_hits]
            hits[found] = True
            hourly[found] = True
        order = sorted(
            np.flatnonzero(hits).tolist(),
            # the name last: ties open in the same order whatever the process's hash seed
            key=lambda i: (
                p[i], -x[i], KIND_ORDER.get(key_kind(candidates[i]), 9), key_name(candidates[i])
            ),
        )
        for i in order:
            key = candidates[i]
            if any(key in a.keys for a in self.active.values()):
                continue
            fired = f"{cfg.test}/{'1h' if hourly[i] else '15min'}"
            changed.append(self._open(key, minute, int(x[i]), float(lam[i]), float(p[i]), fired))
        return changed

    def _volume_expected(self, minute: int) -> float | None:
        if self.hours_seen < 24:
            return None
        slot = self.seasonal[(minute // 60) % 24]
        return None if slot is None else slot * DETECT_WINDOW / 60

    def matching(self, keys: Iterable[Key], minute: int) -> list[Sampled]:
        """The sampled posts of the 15 minutes up to ``minute`` that carry any of ``keys``."""
        wanted = set(keys)
        return [
            s
            for m in range(minute - DETECT_WINDOW + 1, minute + 1)
            for s in self.samples.get(m, [])
            if not wanted.isdisjoint(s.keys)
        ]

    def _open(self, key: Key, minute: int, x: int, lam: float, p: float, fired: str) -> Trend:
        """A new trend led by ``key``, or ``key`` joined to an active trend. ``fired`` names the
        test and window that found it; the volume, expectation and growth are the quarter
        hour's either way, the p-value the window's."""
        posts = self.matching([key], minute)
        at = minute_time(minute + 1)
        for active in self.active.values():
            # The key joins a trend whose posts its own posts are: those that carry two of the
            # trend's keys (its lead alone while it has one). A single shared key is not enough:
            # through a common word ("crash") a long-running trend would swallow the next event
            # one key at a time.
            need = min(2, len(active.keys))
            shared = sum(len(active.keys.intersection(s.keys)) >= need for s in posts)
            if shared and shared >= 0.3 * len(posts):
                active.keys.add(key)
                trend = active.trend.model_copy(
                    update={"related": [*active.trend.related, key_name(key)]}
                )
                active.trend = trend
                self._record(trend)
                return trend
        trend = Trend(
            id=f"{key_kind(key)}:{key_name(key)}:{minute}",
            what=key_name(key),
            kind=key_kind(key),
            started_at=minute_time(self._start(key, minute, lam)),
            detected_at=at,
            updated_at=at,
            growth=round(x / lam, 2) if lam > 0 else math.inf,
            volume=x,
            peak_volume=x,
            expected=round(lam, 3),
            p_value=p,
            status="emerging",
            detector=fired,
            **describe(posts),
        )
        self.active[trend.id] = Active(trend=trend, key=key, keys={key})
        self._record(trend)
        if self.publish is not None:
            self.publish(trend)
        return trend

    def _start(self, key: Key, minute: int, lam: float) -> int:
        """The first minute of the last hour from which the key ran above its expected rate."""
        per_min = max(lam / DETECT_WINDOW, 0.5)
        start = minute
        for m in range(minute, minute - 60, -1):
            if self.counts(m).get(key, 0) > 2 * per_min:
                start = m
            elif m < minute - DETECT_WINDOW:
                break
        return start

    def _refresh_active(self, minute: int, window: Counter[Key], n: int) -> list[Trend]:
        changed: list[Trend] = []
        cfg = self.config
        for tid in list(self.active):
            active = self.active[tid]
            old = active.trend
            x = window.get(active.key, 0)
            if active.key == "all":
                lam = self._volume_expected(minute) or float(old.expected)
            else:
                lam = float(self.expected([active.key], n)[0]) if n else old.expected
            ratio = x / lam if lam > 0 else 0.0
            at = minute_time(minute + 1)
            if ratio < cfg.end_ratio or x < cfg.min_count / 2:
                active.low_since = minute if active.low_since is None else active.low_since
            else:
                active.low_since = None
            if active.low_since is not None and minute - active.low_since >= cfg.end_after_min:
                status: Status = "ended"
            elif x >= old.peak_volume:
                status = "emerging" if old.status == "emerging" else "peaking"
            elif x >= 0.5 * old.peak_volume:
                status = "peaking"
            else:
                status = "fading"
            posts = self.matching(active.keys, minute)
            update: dict[str, Any] = {
                "updated_at": at,
                "volume": x,
                "peak_volume": max(old.peak_volume, x),
                "growth": round(ratio, 2),
                "status": status,
            }
            if posts:
                update.update(describe(posts))
            if status == "ended":
                update["ended_at"] = at
                del self.active[tid]
            if status != old.status or minute % 15 == 0:
                trend = old.model_copy(update=update)
                active.trend = trend
                self._record(trend)
                changed.append(trend)
        return changed

    def _record(self, trend: Trend) -> None:
        self.trends[trend.id] = trend
        self._pending_trends[trend.id] = trend

    # ---------------------------------------------------------- persistence

    def flush(self, everything: bool = False) -> list[Trend]:
        """Write what changed: the buckets of closed minutes once the stream reaches a new
        minute (of every minute with ``everything``), trends, and the baseline after an hour
        closed. Late posts of closed minutes wait for the next new minute, so a replay whose
        batches span many minutes does not rewrite them every batch. A bucket written again
        (late posts) is inserted as its next revision, never updated: inserts are what the
        MongoDB-wire store does cheaply, and readers take each minute's newest revision.
        A shared detector closes minutes here too (``_lead``), and returns the trends
        created or changed. Idempotent, so the worker may retry it; it is the detector's only
        I/O."""
        if self.store is None:
            self._pending_trends = {}
            return []
        new_minute = self.watermark != self.flushed_at
        if new_minute:
            assert self.watermark is not None
            if self.shared:
                self._advance(self.watermark)
            else:
                self._write_buckets(self.watermark - 1)
            self.flushed_at = self.watermark
        due = self._behind or time.monotonic() - self._led_at >= LEAD_EVERY_S
        if self.shared and self.watermark is not None and (new_minute or due):
            self._changed.extend(self._lead(self.watermark))
        if everything:
            self._write_buckets(None)
        for t in self._pending_trends.values():
            self.store.put_record(
                "trend_records", t.id, {**t.model_dump(mode="python"), "at": t.detected_at}
            )
        self._pending_trends = {}
        if self.state_dirty or everything:
            self.save_state()
            self.state_dirty = False
        changed, self._changed = self._changed, []
        return changed

    def _write_buckets(self, upto: int | None) -> None:
        """Write this worker's buckets of the minutes counted since they were last written, up
        to ``upto`` (every one with None), each as its minute's next revision."""
        assert self.store is not None
        minutes = sorted(m for m in self.dirty if upto is None or m <= upto)
        for m in minutes:
            if m in self.own:
                rev = self.revisions.get(m, 0)
                doc = {**self._bucket_doc(m), "rev": rev}
                self.store.add_record("trend_buckets", f"{self.worker_id}:{m}:{rev}", doc)
        for m in minutes:
            self.revisions[m] = self.revisions.get(m, 0) + 1
        self.dirty -= set(minutes)

    def _bucket_doc(self, minute: int) -> dict[str, Any]:
        meta: list[tuple[Key, int]] = []
        terms: list[tuple[Key, int]] = []
        for kc in self.own[minute].items():
            (meta if is_meta(kc[0]) else terms).append(kc)
        if len(terms) > PERSIST_TERMS_PER_MINUTE:  # most minutes: no sort needed
            terms = heapq.nlargest(PERSIST_TERMS_PER_MINUTE, terms, key=itemgetter(1))
        return {
            "at": minute_time(minute),
            "worker": self.worker_id,
            "minute": minute,
            # parallel arrays: FerretDB v1 refuses nested arrays
            "keys": [key_name(k) for k, _ in meta + terms],
            "counts": [c for _, c in meta + terms],
        }

    def save_state(self) -> None:
        # a shared detector's baseline is of the minutes it closed, not of those it counted
        upto = self.closed if self.shared else self.watermark
        if self.store is None or upto is None or (self.shared and not self.leader):
            return
        top = sorted(self.shares.items(), key=lambda kv: -kv[1])[:BASELINE_KEYS]
        self.store.put_record(
            "trend_state",
            self.worker_id,
            {
                "at": minute_time(upto),
                "worker": self.worker_id,
                "share_keys": [key_name(k) for k, _ in top],
                "shares": [v * self.share_scale for _, v in top],
                "share_weight": self.share_weight,
                "hours_seen": self.hours_seen,
                "seasonal": self.seasonal,
                "hourly_volume": self.hourly_volume,
            },
        )

    def load(self, closed: int | None = None) -> None:
        """Take up where the workers left off: the newest baseline, the last ``KEEP_MIN`` minutes
        of buckets of every worker (as a base this worker never rewrites) and the trends still
        active. A restart reads the buckets written since a day before the baseline was saved,
        to find the newest minute, and keeps those ``KEEP_MIN`` minutes of them. A shared
        detector taking the lease over reads only the ``KEEP_MIN`` minutes up to ``closed`` (the
        last its predecessor closed) as the deployment's counts, and goes on from there."""
        assert self.store is not None
        states = self.store.find_records("trend_state", limit=LOAD_LIMIT)
        since = None if closed is None else minute_time(closed - KEEP_MIN)
        if states:
            state = max(states, key=lambda d: as_time(d["at"]))
            # buckets reach at most an hour past the newest baseline (saved hourly and at close)
            since = since or as_time(state["at"]) - timedelta(days=1)
            self.shares = {
                parse_key(k): float(v)
                for k, v in zip(state["share_keys"], state["shares"], strict=True)
            }
            self.share_weight = float(state["share_weight"])
            self.hours_seen = int(state["hours_seen"])
            self.seasonal = list(state["seasonal"])
            self.hourly_volume = float(state["hourly_volume"])
        until = None if closed is None else minute_time(closed + 1)
        buckets = newest_revisions(
            self.store.find_records("trend_buckets", limit=LOAD_LIMIT, since=since, until=until)
        )
        if not buckets and closed is None:
            return
        newest = max(int(b["minute"]) for b in buckets) if closed is None else closed
        into = self.merged if self.shared else self.base
        for b in buckets:
            m = int(b["minute"])
            if m > newest - KEEP_MIN:
                into.setdefault(m, Counter()).update(
                    {parse_key(k): int(c) for k, c in zip(b["keys"], b["counts"], strict=True)}
                )
        if self.shared:
            self.closed = newest
        else:
            self.watermark = newest
            self.closed = newest - 1
        self.window15 = self.window(DETECT_WINDOW, self.closed)
        live = ["emerging", "peaking", "fading"]
        for doc in self.store.find_records("trend_records", {"status": live}, LOAD_LIMIT):
            trend = as_trend(doc)
            keys = {parse_key(trend.what), *(parse_key(r) for r in trend.related)}
            self.active[trend.id] = Active(trend=trend, key=parse_key(trend.what), keys=keys)

    def close(self) -> None:
        """Persist everything, the open minute included (a graceful stop loses nothing); a
        leader hands the lease back, with the last minute it closed, for another to go on at
        once."""
        self.flush(everything=True)
        if self.shared:
            # the others need not wait for this worker's counts any more
            assert self.store is not None
            self.store.delete_record("trend_progress", self.worker_id)
        if self.shared and self.leader:
            assert self.store is not None
            now = self.clock()
            self.store.take_lease(LEASE, self.worker_id, now, now, {"closed": self.closed})
            self.leader = False


def describe(posts: Sequence[Sampled]) -> dict[str, Any]:
    """Sample posts, sentiment mix and top authors of the posts that carry a trend."""
    authors = Counter(s.author for s in posts)
    return {
        "sample_posts": [
            SamplePost(id=s.id, text=s.text, author=s.author, sentiment=s.sentiment)
            for s in posts[-5:]
        ],
        "sentiment_mix": dict(Counter(s.sentiment for s in posts)),
        "top_authors": [AuthorCount(author=a, posts=n) for a, n in authors.most_common(5)],
    }


def newest_revisions(buckets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each worker's newest revision of each minute's bucket (older ones are superseded)."""
    newest: dict[tuple[str, int], dict[str, Any]] = {}
    for doc in buckets:
        at = (str(doc["worker"]), int(doc["minute"]))
        if at not in newest or int(doc.get("rev", 0)) > int(newest[at].get("rev", 0)):
            newest[at] = doc
    return list(newest.values())


def minute_time(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def as_time(value: datetime | str) -> datetime:
    """A stored time: a datetime from MongoDB, ISO text from the embedded store."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def as_trend(doc: dict[str, Any]) -> Trend:
    return Trend.model_validate({k: v for k, v in doc.items() if k != "at"})


def trends_between(store: Store, since: datetime, until: datetime) -> list[Trend]:
    """The trends detected in ``[since, until)``, as stored, oldest first."""
    docs = store.find_records("trend_records", limit=LOAD_LIMIT, since=since, until=until)
    return sorted(map(as_trend, docs), key=lambda t: (t.detected_at, t.id))


def bucket_counts(store: Store, since: datetime, until: datetime) -> dict[int, Counter[str]]:
    """Counts per minute in ``[since, until)``, summed over every worker's buckets."""
    merged: dict[int, Counter[str]] = {}
    docs = store.find_records("trend_buckets", limit=LOAD_LIMIT, since=since, until=until)
    for doc in newest_revisions(docs):
        merged.setdefault(int(doc["minute"]), Counter()).update(
            {str(k): int(c) for k, c in zip(doc["keys"], doc["counts"], strict=True)}
        )
    return merged

"""The trend detector: windows, bursts, trend records, persistence across restarts and workers."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from classifiers.triager import Triager
from pipeline.bus.memory import InProcessBus
from pipeline.records import Author, Post
from pipeline.store.embedded import EmbeddedStore
from pipeline.store.interface import Store
from pipeline.trends import detector as trends
from pipeline.trends.detector import (
    Batch,
    DetectorConfig,
    Trend,
    TrendDetector,
    bucket_counts,
    tokenise,
)
from pipeline.trends.incidents import incidents
from pipeline.worker import Worker
from tests.helpers import embedded_settings

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
START_MIN = int(START.timestamp() // 60)
WORDS = (
    "order",
    "delivery",
    "late",
    "refund",
    "app",
    "login",
    "crash",
    "screen",
    "battery",
    "charger",
    "price",
    "store",
    "staff",
    "parcel",
    "tracking",
    "account",
    "email",
    "password",
    "card",
    "payment",
    "support",
    "chat",
    "wait",
    "week",
    "today",
)


def background(minute: int, rng: random.Random, n: int = 6) -> Batch:
    texts = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(n)]
    return batch_of(minute, texts, rng)


def batch_of(minute: int, texts: list[str], rng: random.Random, topic: str = "general") -> Batch:
    n = len(texts)
    return Batch(
        ids=[f"t:{minute}-{i}-{rng.random():.8f}" for i in range(n)],
        minutes=np.full(n, minute, dtype=np.int64),
        texts=texts,
        languages=["en"] * n,
        topics=[topic] * n,
        sentiments=[rng.choice(("negative", "neutral", "positive")) for _ in range(n)],
        sources=["x"] * n,
        authors=[f"x:{rng.randrange(500)}" for _ in range(n)],
    )


def stream(detector: TrendDetector, minutes: range, seed: int = 1) -> list[Trend]:
    rng = random.Random(seed)
    created = []
    for m in minutes:
        created.extend(detector.update_batch(background(START_MIN + m, rng)))
    return created


def burst(detector: TrendDetector, first: int, length: int, seed: int = 2) -> list[Trend]:
    rng = random.Random(seed)
    changed = []
    for m in range(first, first + length):
        texts = [
            f"the app is down again #blackout cannot pay {rng.choice(WORDS)}" for _ in range(4)
        ]
        b = background(START_MIN + m, rng)
        extra = batch_of(START_MIN + m, texts, rng, topic="product_defect")
        changed.extend(detector.update_batch(b))
        changed.extend(detector.update_batch(extra))
    return changed


def test_sliding_windows_count_every_key() -> None:
    detector = TrendDetector()
    rng = random.Random(0)
    for m in range(120):
        detector.update_batch(batch_of(START_MIN + m, ["refund please #help", "hello"], rng))
    windows = detector.windows()
    assert windows["1m"]["all"] == 2 and windows["1m"]["#help"] == 1
    assert windows["15m"]["all"] == 30 and windows["15m"]["refund"] == 15
    assert windows["60m"][("refund", "please")] == 60
    assert windows["60m"]["all"] == 120 and windows["60m"]["topic=general"] == 120
    assert set(windows) == {"1m", "15m", "60m"}
    with pytest.raises(ValueError, match="at most 90 minutes"):
        detector.window(24 * 60)  # a day is the reports', from the stored buckets
    assert windows["15m"]["lang=en"] == 30 and windows["15m"]["sent=general|negative"] >= 0


def test_a_term_counts_once_per_post() -> None:
    detector = TrendDetector()
    detector.update_batch(batch_of(START_MIN, ["lol lol lol lol", "lol"], random.Random(0)))
    assert detector.window(1)["lol"] == 2


def test_the_word_all_does_not_add_to_the_volume() -> None:
    detector = TrendDetector()
    detector.update_batch(batch_of(START_MIN, ["all my orders are late", "hello"], random.Random()))
    assert detector.window(1)["all"] == 2 and detector.window(1)["orders"] == 1


def test_keys_stay_with_their_post_across_one_pass_over_the_batch() -> None:
    texts = ["Storm ZZSEPZZ coming", "see https://x.co/a", "", "zzsepzz storm"]
    assert tokenise(texts) == [["storm", "zzsepzz", "coming"], ["see"], [], ["zzsepzz", "storm"]]
    detector = TrendDetector()
    detector.update_batch(batch_of(START_MIN, texts, random.Random(0)))
    window = detector.window(1)
    assert window["storm"] == 2 and window[("see", "zzsepzz")] == 0 and window["all"] == 4


def test_keys_read_back_from_the_store_share_the_words_counted_live() -> None:
    # A leader holds every worker's stored counts of the last minutes beside its own: read
    # back, each word must be the object its own counters hold, not one more copy per minute.
    counted = tokenise(["parcel lost again"])[0]
    stored = " ".join(["parcel", "lost"])  # a new string, as a bucket read from the store is
    phrase = trends.parse_key(stored)
    assert phrase == ("parcel", "lost") and phrase[0] is counted[0] and phrase[1] is counted[1]
    assert trends.parse_key(stored.split()[0]) is counted[0]


def test_steady_background_raises_no_alert_and_a_burst_raises_one() -> None:
    alerts: list[Trend] = []
    detector = TrendDetector(publish=alerts.append)
    stream(detector, range(0, 6 * 60))
    assert alerts == []
    changed = burst(detector, 6 * 60, 20)
    assert len(alerts) == 1, [a.what for a in alerts]
    trend = alerts[0]
    assert trend.what == "#blackout"  # of keys as surprising as each other, the hashtag leads
    assert trend.status == "emerging" and trend.growth >= 4 and trend.volume >= 8
    assert trend.detected_at - START <= timedelta(hours=6, minutes=20)
    assert trend.sample_posts and "blackout" in trend.sample_posts[0].text
    assert sum(trend.sentiment_mix.values()) > 0 and trend.top_authors
    assert any(t.id == trend.id for t in changed)
    # the co-occurring keys of the same posts join the one trend instead of alerting again
    stream(detector, range(6 * 60 + 20, 9 * 60), seed=3)
    assert len(alerts) == 1
    last = detector.trends[trend.id]
    assert last.status in {"fading", "ended"} and last.related


def test_a_new_phrase_is_an_emerging_trend() -> None:
    alerts: list[Trend] = []
    detector = TrendDetector(publish=alerts.append)
    stream(detector, range(0, 4 * 60))
    rng = random.Random(5)
    for m in range(4 * 60, 4 * 60 + 15):
        detector.update_batch(background(START_MIN + m, rng))
        detector.update_batch(
            batch_of(START_MIN + m, ["zorblax gadget melted", "new zorblax gadget"], rng)
        )
    detector.update_batch(background(START_MIN + 4 * 60 + 16, rng))
    assert [a.kind for a in alerts] and alerts[0].kind in {"term", "phrase"}
    assert "zorblax" in alerts[0].what


def test_a_hashtag_also_counts_as_its_word() -> None:
    detector = TrendDetector()
    rng = random.Random(0)
    detector.update_batch(batch_of(START_MIN, ["#Flood in town", "the flood again #flood"], rng))
    window = detector.window(1)
    assert window["flood"] == 2 and window["#flood"] == 2 and window["all"] == 2


def words_of(trend: Trend, detector: TrendDetector | None = None) -> set[str]:
    """Every word of a trend's keys (its lead and, as the detector has it now, its related)."""
    names = [trend.what, *(detector.trends[trend.id].related if detector else trend.related)]
    return {w for name in names for w in name.split()}


def slow_build(detector: TrendDetector, first: int, length: int, every: int) -> None:
    """Background, and one post about a quarry fire every ``every`` minutes."""
    rng = random.Random(4)
    for m in range(first, first + length):
        detector.update_batch(background(START_MIN + m, rng))
        if m % every == 0:
            detector.update_batch(batch_of(START_MIN + m, ["smoke from the quarry fire"], rng))


def test_an_event_that_builds_over_an_hour_is_found_by_the_hourly_test() -> None:
    """Three posts a quarter-hour never stand out in 15 minutes (fewer than ``min_count``);
    over the hour they do. Without the hourly test the same stream raises nothing."""
    found: list[Trend] = []
    detector = TrendDetector(publish=found.append)
    stream(detector, range(0, 4 * 60))
    slow_build(detector, 4 * 60, 60, every=5)
    assert found and all(words_of(a) & {"smoke", "quarry", "fire"} for a in found), found
    assert min(a.detected_at for a in found) - START <= timedelta(hours=5)
    assert {a.detector for a in found} == {"poisson/1h"}  # the trend says which test found it

    missed: list[Trend] = []
    fast_only = TrendDetector(config=DetectorConfig(hour_min_count=10**6), publish=missed.append)
    stream(fast_only, range(0, 4 * 60))
    slow_build(fast_only, 4 * 60, 60, every=5)
    assert missed == []


def test_a_known_phrase_rising_over_an_hour_is_held_to_the_known_keys_threshold() -> None:
    """A phrase the baseline knows (a post every half hour) comes every 4 minutes for an hour:
    too few for the quarter hour, and short of the threshold set for chance among the many rare
    keys; the few known keys have their own, looser one."""

    def run(config: DetectorConfig) -> list[Trend]:
        found: list[Trend] = []
        detector = TrendDetector(config=config, publish=found.append)
        rng = random.Random(4)
        for m in range(0, 5 * 60):
            detector.update_batch(background(START_MIN + m, rng))
            if m % (30 if m < 4 * 60 else 4) == 0:
                detector.update_batch(batch_of(START_MIN + m, ["the ferry is late today"], rng))
        return found

    found = run(DetectorConfig())
    assert [(a.detector, words_of(a) >= {"ferry"}) for a in found] == [("poisson/1h", True)]
    assert found[0].expected > 0 and found[0].detected_at - START <= timedelta(hours=5)
    assert run(DetectorConfig(hour_alpha_known=DetectorConfig().hour_alpha)) == []


def test_a_long_running_trend_does_not_swallow_the_next_event_through_a_common_word() -> None:
    """The first event's posts share the word "disaster" with the second's; the second still gets
    its own alert, and the first event's trends keep the second's words out of their keys."""
    alerts: list[Trend] = []
    detector = TrendDetector(publish=alerts.append)
    stream(detector, range(0, 4 * 60))
    rng = random.Random(6)
    for m in range(4 * 60, 6 * 60):
        detector.update_batch(background(START_MIN + m, rng))
        texts = ["helicopter disaster in glasgow"] * 3
        if m >= 5 * 60:
            texts += ["train disaster near yonkers derailment"] * 3
        detector.update_batch(batch_of(START_MIN + m, texts, rng))
    second_words = {"train", "near", "yonkers", "derailment"}
    first = [a for a in alerts if a.detected_at <= START + timedelta(hours=5)]
    second = [a for a in alerts if a.detected_at > START + timedelta(hours=5)]
    assert all(words_of(a) & second_words for a in second), [a.what for a in second]
    assert first and second, [a.what for a in alerts]
    for trend in first:
        assert not words_of(trend, detector) & second_words, words_of(trend, detector)


def test_daily_volume_baseline_follows_the_hour_of_day() -> None:
    detector = TrendDetector()
    rng = random.Random(0)
    for m in range(0, 26 * 60):
        hour = (m // 60) % 24
        detector.update_batch(background(START_MIN + m, rng, n=2 if hour < 12 else 8))
    night, day = detector.seasonal[3], detector.seasonal[15]
    assert night is not None and day is not None
    assert 100 <= night <= 140 and 440 <= day <= 520


@pytest.mark.parametrize("test", ["poisson", "zscore", "negbin"])
def test_every_burst_test_finds_the_burst(test: str) -> None:
    alerts: list[Trend] = []
    detector = TrendDetector(config=DetectorConfig(test=test), publish=alerts.append)
    stream(detector, range(0, 4 * 60))
    burst(detector, 4 * 60, 16)
    fired = {a.detector for a in alerts}
    assert f"{test}/15min" in fired and fired <= {f"{test}/15min", f"{test}/1h"}


def test_a_restarted_detector_keeps_counts_baseline_and_trends(store: Store) -> None:
    first = TrendDetector(store, worker_id="w1")
    stream(first, range(0, 4 * 60))
    burst(first, 4 * 60, 16)
    windows = first.windows()
    active = set(first.active)
    assert active
    first.close()
    stored = sum(c["all"] for c in bucket_counts(store, START, START + timedelta(hours=5)).values())

    again = TrendDetector(store, worker_id="w1-restarted")
    assert again.watermark == first.watermark
    assert again.windows()["15m"] == windows["15m"]
    assert again.windows()["60m"]["all"] == windows["60m"]["all"]
    assert again.windows()["60m"]["topic=general"] == windows["60m"]["topic=general"]
    assert again.hours_seen == first.hours_seen
    assert again.shares.keys() == first.shares.keys()
    assert set(again.active) == active
    # it goes on where the first left off: the same burst is not announced twice
    alerts: list[Trend] = []
    again.publish = alerts.append
    burst(again, 4 * 60 + 16, 5, seed=9)
    assert alerts == []
    again.close()
    # and nothing was counted twice: the stored buckets hold each minute once
    merged = bucket_counts(store, START, START + timedelta(hours=5))
    assert sum(c["all"] for c in merged.values()) == stored + 5 * 10


def test_workers_merge_their_counts(store: Store) -> None:
    a, b = TrendDetector(store, worker_id="wa"), TrendDetector(store, worker_id="wb")
    rng = random.Random(3)
    for m in range(30):
        a.update_batch(batch_of(START_MIN + m, ["refund now", "#sale today"], rng))
        b.update_batch(batch_of(START_MIN + m, ["refund later"], rng))
    a.close()
    b.close()
    merged = bucket_counts(store, START, START + timedelta(hours=1))
    assert sum(c["all"] for c in merged.values()) == 90
    assert sum(c["refund"] for c in merged.values()) == 60
    reader = TrendDetector(store, worker_id="reader")
    assert reader.window(15)["refund"] == 30 and reader.window(15)["#sale"] == 15


def test_late_posts_rewrite_a_minute_once_and_readers_count_it_once(store: Store) -> None:
    rng = random.Random(4)
    detector = TrendDetector(store, worker_id="wl")
    detector.update_batch(batch_of(START_MIN, ["refund now", "refund later"], rng))
    detector.update_batch(batch_of(START_MIN + 1, ["parcel"], rng))
    detector.flush()  # minute 0 closed and written
    detector.update_batch(batch_of(START_MIN, ["refund late"], rng))  # a late post of minute 0
    detector.update_batch(batch_of(START_MIN + 2, ["parcel"], rng))
    detector.flush()  # minute 0 written again, as its next revision
    detector.close()
    revisions = [d["rev"] for d in store.find_records("trend_buckets", {"minute": START_MIN})]
    assert sorted(revisions) == [0, 1]
    merged = bucket_counts(store, START, START + timedelta(minutes=3))
    assert merged[START_MIN]["refund"] == 3 and merged[START_MIN]["all"] == 3
    assert TrendDetector(store, worker_id="reader").window(3)["refund"] == 3


def test_the_worker_feeds_every_batch_to_the_detector_and_publishes_alerts(
    tmp_path: Path, triager: Triager
) -> None:
    settings = embedded_settings(data_dir=tmp_path, batch_size=500)
    bus = InProcessBus(partitions=1)
    store = EmbeddedStore(settings.embedded_db)
    store.ensure_schema()
    clock = [START]
    worker = Worker(bus, store, triager, settings, clock=lambda: clock[0])
    assert worker.trends is not None
    worker.trends.config = DetectorConfig(warmup_hours=2)
    producer = bus.producer()
    rng = random.Random(4)
    serial = 0

    def send(minute: int, text: str) -> None:
        nonlocal serial
        serial += 1
        post = Post(
            source="x",
            native_id=str(serial),
            author=Author(id=f"u{rng.randrange(300)}"),
            text=text,
            created_at=START + timedelta(minutes=minute, seconds=rng.randrange(60)),
        )
        producer.send(settings.topic_raw, post.model_dump_json().encode())

    for m in range(0, 3 * 60, 2):
        for _ in range(3):
            send(m, " ".join(rng.choice(WORDS) for _ in range(7)))
        if m % 20 == 0:
            clock[0] = START + timedelta(minutes=m + 1)
            worker.run(threading.Event(), idle_exit_s=0.05)
    for m in range(3 * 60, 3 * 60 + 10):
        for _ in range(6):
            send(m, f"my acme phone is on fire #acmefire {rng.choice(WORDS)}")
        clock[0] = START + timedelta(minutes=m + 1)
        worker.run(threading.Event(), idle_exit_s=0.05)
    worker.close()
    alerts = [Trend.model_validate_json(m.value) for m in bus.read_all(settings.topic_alerts)]
    assert alerts and any("acmefire" in a.what or "fire" in a.what for a in alerts)
    stored = store.find_records("trend_records")
    assert {d["id"] for d in stored} >= {a.id for a in alerts}
    assert store.find_records("trend_buckets")
    # the spike's posts, as the worker wrote them, became one incident without a queue scan
    fire = {i.id for i in store.list_queue("open", 10_000) if "acmefire" in i.text}
    grouped = [set(i.item_ids) for i in incidents(store) if i.item_ids and set(i.item_ids) <= fire]
    assert grouped and max(map(len, grouped)) >= 10


# Chinese review sets (../shared/data, read in place): a calm baseline of hotel, fruit, clothing
# and book reviews, and a burst of water-heater (热水器) complaints.
ZH_DATA = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/chinese_sophonplus/datasets/online_shopping_10_cats/online_shopping_10_cats.csv"
)


def zh_reviews() -> dict[str, list[str]]:
    import csv

    by_cat: dict[str, list[str]] = {}
    with ZH_DATA.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_cat.setdefault(row["cat"], []).append(row["review"].strip("\ufeff")[:200])
    return by_cat


def zh_batch(minute: int, texts: list[str], rng: random.Random, topic: str) -> Batch:
    b = batch_of(minute, texts, rng, topic=topic)
    b.languages[:] = ["zh"] * len(texts)
    return b


def test_chinese_text_is_segmented_into_words() -> None:
    tokens = tokenise(["热水器漏水了，非常不满意 #售后", "the app 热水器 crashed"])
    assert tokens[0][:3] == ["热水器", "漏水", "了"] and "#售后" not in tokens[0]
    assert tokens[1] == ["the", "app", "热水器", "crashed"]
    assert trends.interesting("热水器") and trends.interesting(("热水器", "漏水"))
    assert not trends.interesting("了")


def test_a_chinese_burst_on_a_calm_chinese_baseline_is_detected_without_false_alerts() -> None:
    by_cat = zh_reviews()
    calm = [t for c in ("酒店", "水果", "衣服", "书籍") for t in by_cat[c] if "热水器" not in t]
    heater = [t for t in by_cat["热水器"] if "热水器" in t]
    assert len(calm) > 10_000 and len(heater) > 50
    rng = random.Random(7)
    rng.shuffle(calm)
    calm_posts = iter(calm)
    alerts: list[Trend] = []
    detector = TrendDetector(publish=alerts.append)
    for m in range(6 * 60):
        texts = [next(calm_posts) for _ in range(6)]
        detector.update_batch(zh_batch(START_MIN + m, texts, rng, "general"))
    assert alerts == [], [a.what for a in alerts]
    for m in range(6 * 60, 6 * 60 + 30):
        texts = [next(calm_posts) for _ in range(6)]
        detector.update_batch(zh_batch(START_MIN + m, texts, rng, "general"))
        burst_texts = rng.sample(heater, 3)
        detector.update_batch(zh_batch(START_MIN + m, burst_texts, rng, "product_defect"))
    assert len(alerts) == 1, [a.what for a in alerts]
    trend = alerts[0]
    assert "热水器" in (trend.what, *trend.related), (trend.what, trend.related)
    assert trend.detected_at - START <= timedelta(hours=6, minutes=30)

"""The worker over the in-process bus and the embedded store: batches, dead letters, replays."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from classifiers.seed import EMOTIONS
from classifiers.triager import Triager
from pipeline.bus.interface import Consumer, Message
from pipeline.bus.memory import InProcessBus
from pipeline.errors import TransientError
from pipeline.records import DeadLetter, Post, TriagedPost
from pipeline.settings import Settings
from pipeline.store.embedded import EmbeddedStore
from pipeline.store.interface import WriteResult
from pipeline.worker import Worker
from tests.helpers import embedded_settings, make_post, poll_until, post_bytes

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def run_until_drained(worker: Worker) -> None:
    worker.run(threading.Event(), idle_exit_s=0.3)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return embedded_settings(data_dir=tmp_path, batch_size=64, pause_s=0, retry_backoff_s=0.01)


@pytest.fixture
def bus() -> InProcessBus:
    return InProcessBus(partitions=2)


@pytest.fixture
def store(settings: Settings) -> EmbeddedStore:
    s = EmbeddedStore(settings.embedded_db)
    s.ensure_schema()
    return s


def feed(bus: InProcessBus, values: Sequence[bytes], topic: str = "posts.raw") -> None:
    bus.ensure_topics([topic])
    producer = bus.producer()
    for v in values:
        producer.send(topic, v)


def dead_letters(bus: InProcessBus) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(m.value) for m in bus.read_all("posts.dlq")]


def test_valid_posts_are_stored_and_malformed_ones_dead_lettered(
    bus: InProcessBus, store: EmbeddedStore, triager: Triager, settings: Settings
) -> None:
    bad = [b"not json", b'{"source": "x"}', b"\xff\xfe invalid utf-8", b'{"source": 1, "text": []}']
    feed(bus, [post_bytes(i) for i in range(300)] + bad)
    worker = Worker(bus, store, triager, settings, clock=lambda: NOW)
    run_until_drained(worker)

    assert sorted(store.post_ids()) == sorted(f"test:{i}" for i in range(300))
    triaged = [TriagedPost.model_validate_json(m.value) for m in bus.read_all("posts.triaged")]
    spam = [TriagedPost.model_validate_json(m.value) for m in bus.read_all("posts.spam")]
    assert sorted(t.id for t in triaged + spam) == sorted(f"test:{i}" for i in range(300))
    # spam goes only to those who ask for it, on its own topic
    assert spam and all(t.is_spam for t in spam) and not any(t.is_spam for t in triaged)
    assert store.count("queue") == len(triaged)
    letters = dead_letters(bus)
    assert sorted(base64.b64decode(d.original) for d in letters) == sorted(bad)
    assert all(d.stage == "parse" for d in letters)
    assert all(d.reason.startswith(("invalid post", "not UTF-8")) for d in letters), letters
    # everything was committed: the group has nothing left to read
    assert poll_until(bus.consumer(settings.consumer_group, ["posts.raw"]), 1, timeout_s=0.3) == []


def test_every_triaged_post_says_why_and_by_which_models(
    bus: InProcessBus, store: EmbeddedStore, triager: Triager, settings: Settings
) -> None:
    feed(bus, [post_bytes(i) for i in range(16)])
    run_until_drained(Worker(bus, store, triager, settings, clock=lambda: NOW))
    for m in bus.read_all("posts.triaged"):
        t = TriagedPost.model_validate_json(m.value)
        assert t.priority.reasons and t.priority.reasons[0].startswith("urgency")
        assert set(t.model_versions) == {"spam", "topic", "urgency", "sentiment", "emotion"}
        assert t.emotion is not None and t.emotion.label in EMOTIONS
        assert abs(sum(t.urgency.probabilities.values()) - 1) < 0.01


def test_redelivered_and_repeated_posts_are_stored_once(
    bus: InProcessBus, store: EmbeddedStore, triager: Triager, settings: Settings
) -> None:
    values = [post_bytes(i % 50) for i in range(200)]  # every post four times
    feed(bus, values)
    run_until_drained(Worker(bus, store, triager, settings, clock=lambda: NOW))
    assert store.count("posts") == 50
    assert len(store.queue_ids()) == len(set(store.queue_ids()))


class ExplodingTriager(Triager):
    """The real triager, with a stage that raises on one particular text."""

    def triage(self, posts: Sequence[Post], now: datetime) -> list[TriagedPost]:
        if any("EXPLODE" in p.text for p in posts):
            raise RuntimeError("stage bug")
        return super().triage(posts, now)


def test_a_post_that_makes_a_stage_raise_is_dead_lettered_alone(
    bus: InProcessBus, store: EmbeddedStore, triager: Triager, settings: Settings
) -> None:
    exploding = ExplodingTriager(triager.model, triager.version)
    feed(bus, [post_bytes(i) for i in range(100)] + [post_bytes(999, text="please EXPLODE")])
    run_until_drained(Worker(bus, store, exploding, settings, clock=lambda: NOW))
    assert store.count("posts") == 100
    [letter] = dead_letters(bus)
    assert letter.stage == "triage" and "RuntimeError: stage bug" in letter.reason
    assert orjson.loads(base64.b64decode(letter.original))["native_id"] == "999"


class FlakyStore(EmbeddedStore):
    """A real embedded store whose writes numbered in ``failing`` (from 1) fail as if the server
    were away."""

    def __init__(self, path: Path, failing: range) -> None:
        super().__init__(path)
        self.failing = failing
        self.attempts = 0

    def write_batch(self, triaged: Sequence[TriagedPost]) -> WriteResult:
        self.attempts += 1
        if self.attempts in self.failing:
            raise TransientError("store went away")
        return super().write_batch(triaged)


def test_store_outage_pauses_and_replays_without_loss(
    bus: InProcessBus, triager: Triager, tmp_path: Path
) -> None:
    settings = embedded_settings(
        data_dir=tmp_path, batch_size=1000, write_retries=1, pause_s=0, retry_backoff_s=0.01
    )
    store = FlakyStore(settings.embedded_db, failing=range(1, 6))
    store.ensure_schema()
    feed(bus, [post_bytes(i) for i in range(120)])
    crashed = Worker(bus, store, triager, settings, clock=lambda: NOW)
    with pytest.raises(TransientError):
        crashed.process(crashed.poll_batch())  # retries exhausted: nothing may be committed
    crashed.close()  # the worker dies here; its successor must see the whole batch again
    run_until_drained(Worker(bus, store, triager, settings, clock=lambda: NOW))
    assert store.attempts > 5
    assert sorted(store.post_ids()) == sorted(f"test:{i}" for i in range(120))


def test_a_failed_write_replays_its_batch_and_the_one_triaged_behind_it(
    bus: InProcessBus, triager: Triager, tmp_path: Path
) -> None:
    settings = embedded_settings(
        data_dir=tmp_path, batch_size=64, write_retries=0, pause_s=0, retry_backoff_s=0.01
    )
    # the second write fails while the worker has the third batch triaged
    store = FlakyStore(settings.embedded_db, failing=range(2, 3))
    store.ensure_schema()
    feed(bus, [post_bytes(i) for i in range(200)])
    worker = Worker(bus, store, triager, settings, clock=lambda: NOW)
    totals = worker.run(threading.Event(), idle_exit_s=0.3)
    worker.close()
    everyone = sorted(f"test:{i}" for i in range(200))
    assert store.attempts > 4  # four batches, one written twice
    assert sorted(store.post_ids()) == everyone
    assert totals.posts == 200
    # published only after their writes: the failed batch and the one behind it went out once
    published = [TriagedPost.model_validate_json(m.value).id for m in bus.read_all("posts.triaged")]
    published += [TriagedPost.model_validate_json(m.value).id for m in bus.read_all("posts.spam")]
    assert sorted(published) == everyone
    assert set(bus.lag(settings.consumer_group, settings.topic_raw).values()) == {0}


class Joining:
    """An in-process consumer whose group settles its share only when ``settled`` is set: until
    then no share (``assignment`` None) and no records, as a Kafka member while its group forms,
    which on a busy machine outlasts a short idle exit."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.settled = threading.Event()

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        if not self.settled.wait(timeout_s):
            return []
        return self.consumer.poll(max_records, timeout_s)

    def assignment(self) -> frozenset[tuple[str, int]] | None:
        return self.consumer.assignment() if self.settled.is_set() else None

    def commit(self, messages: Sequence[Message]) -> None:
        self.consumer.commit(messages)

    def rewind(self, messages: Sequence[Message]) -> None:
        self.consumer.rewind(messages)

    def behind(self) -> int | None:
        return self.consumer.behind()

    def close(self) -> None:
        self.consumer.close()


def test_the_idle_clock_runs_only_once_the_group_settled_the_workers_share(
    bus: InProcessBus, store: EmbeddedStore, triager: Triager, settings: Settings
) -> None:
    feed(bus, [post_bytes(i) for i in range(50)])
    worker = Worker(bus, store, triager, settings, clock=lambda: NOW)
    worker.consumer = joining = Joining(worker.consumer)
    threading.Timer(1.0, joining.settled.set).start()  # more than three idle exits
    totals = worker.run(threading.Event(), idle_exit_s=0.3)
    worker.close()
    assert totals.posts == 50  # waited for its partitions, read them, then went idle


def test_a_worker_the_group_gives_no_partition_exits_after_the_idle_time(
    bus: InProcessBus, store: EmbeddedStore, triager: Triager, settings: Settings
) -> None:
    """More workers than partitions: the spare one's share is settled and empty, so it exits
    like a worker whose partitions are quiet rather than waiting for a share."""
    readers = [Worker(bus, store, triager, settings) for _ in range(bus.partitions)]
    spare = Worker(bus, store, triager, settings)
    assert spare.consumer.assignment() == frozenset()
    stop = threading.Event()
    backstop = threading.Timer(10, stop.set)  # a spare that never left would hang the suite
    backstop.start()
    started = time.monotonic()
    spare.run(stop, idle_exit_s=0.3)
    backstop.cancel()
    assert time.monotonic() - started < 5
    for w in [spare, *readers]:
        w.close()


def test_the_worker_logs_a_line_a_batch_and_a_warning_a_dead_letter(
    bus: InProcessBus,
    store: EmbeddedStore,
    triager: Triager,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed(bus, [post_bytes(i) for i in range(40)] + [b"not json", b'{"source": 1}'])
    worker = Worker(bus, store, triager, settings, clock=lambda: NOW)
    with caplog.at_level(logging.INFO, logger="pipeline.worker"):
        run_until_drained(worker)
    batches = [r for r in caplog.records if r.getMessage().startswith("batch: ")]
    assert batches and all(r.levelno == logging.INFO for r in batches)
    assert sum(r.posts for r in batches) == 40  # type: ignore[attr-defined]
    assert sum(r.dead_letters for r in batches) == 2  # type: ignore[attr-defined]
    assert batches[-1].lag == 0  # type: ignore[attr-defined]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("dead-lettering posts.raw[" in r.getMessage() for r in warnings)
    assert "invalid post" in warnings[0].getMessage()


def test_json_logs_are_one_object_a_line_with_the_batch_fields() -> None:
    from pipeline.cli.logs import JsonFormatter

    record = logging.LogRecord(
        "pipeline.worker", logging.INFO, "", 0, "batch: %d posts", (3,), None
    )
    record.posts, record.lag = 3, 7
    line = JsonFormatter().format(record)
    assert "\n" not in line
    doc = orjson.loads(line)
    assert (doc["level"], doc["message"]) == ("INFO", "batch: 3 posts")
    assert (doc["posts"], doc["lag"]) == (3, 7)


PII_TEXT = "Refund to card 4111 1111 1111 1111 please, mail jane.doe@example.com or +1 415-555-0134"


@pytest.mark.parametrize("raw_opt_in", [False, True])
def test_pii_stays_in_the_stored_post_and_leaves_only_on_opt_in(
    bus: InProcessBus, store: EmbeddedStore, triager: Triager, tmp_path: Path, raw_opt_in: bool
) -> None:
    settings = embedded_settings(data_dir=tmp_path, triaged_raw=raw_opt_in)
    post = make_post(1, text=PII_TEXT, raw={"email": "jane.doe@example.com"})
    feed(bus, [post.model_dump_json().encode()])
    run_until_drained(Worker(bus, store, triager, settings, clock=lambda: NOW))

    stored = store.get_post("test:1")
    assert stored is not None and stored["post"]["text"] == PII_TEXT  # agents answer from it
    kinds = {e["kind"]: e for e in stored["entities"]}
    assert {"card", "email", "phone"} <= set(kinds)
    for kind, mask in (("card", "[CARD]"), ("email", "[EMAIL]"), ("phone", "[PHONE]")):
        entity = kinds[kind]
        assert entity["text"] == mask  # kind and position, never the value
        assert PII_TEXT[entity["start"] : entity["end"]] != mask
    [message] = bus.read_all("posts.triaged")
    published = TriagedPost.model_validate_json(message.value)
    text = message.value.decode()
    if raw_opt_in:
        assert published.post.text == PII_TEXT and published.post.raw
    else:
        assert published.post.text == published.redacted_text and published.post.raw == {}
        for value in ("4111 1111 1111 1111", "jane.doe@example.com", "415-555-0134"):
            assert value not in text

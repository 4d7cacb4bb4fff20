"""Poison messages on the real Kafka: each goes to the dead-letter topic with its reason, and the
worker goes on with the posts around it."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime

import pytest
from kafka import KafkaProducer

from classifiers.triager import Triager
from pipeline.bus.kafka_records import (
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_STAGE,
    HEADER_TOPIC,
    MAX_POST_BYTES,
)
from pipeline.records import DeadLetter, Post, TriagedPost
from pipeline.worker import BatchStats, Worker
from tests.helpers import post_bytes, wait_for
from tests.pipeline_runs import Deployment
from tests.test_faults_services import assert_each_post_once, stored

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.faults]

# over the worker's limit for a post, under the raw topic's limit for a message
OVERSIZED = json.dumps(
    {**json.loads(post_bytes(10_004)), "raw": {"blob": "y" * (MAX_POST_BYTES + 1000)}}
).encode()
WITH_ID_FIELD = json.dumps({**json.loads(post_bytes(10_003)), "id": "test:10003"}).encode()
# headers nobody asked for, on good posts: read past, never a reason to stop
UNKNOWN_HEADERS = [("x-unknown", b"\x00\xff"), ("x-unknown", b""), ("traceparent", b"00-1-2-01")]


class ExplodingTriager(Triager):
    """The real triager, with a stage that raises on one particular text."""

    def triage(self, posts: Sequence[Post], now: datetime) -> list[TriagedPost]:
        if any("EXPLODE" in p.text for p in posts):
            raise RuntimeError("stage bug")
        return super().triage(posts, now)


# what: (value, key, the reason it must give, the dead letter's key)
POISON: dict[str, tuple[bytes, bytes | None, str, bytes | None]] = {
    "invalid JSON": (
        b'{"source": "test", "native_id": ', None, "invalid post: record: Invalid JSON", None
    ),
    "wrong schema": (b'{"source": 7, "text": []}', None, "invalid post: source", None),
    "extra id field": (WITH_ID_FIELD, None, "id: Extra inputs are not permitted", b"test:10003"),
    "oversized value": (OVERSIZED, b"test:10004", "oversized: ", b"test:10004"),
    "invalid UTF-8": (b'{"text": "\xff\xfe"}', b"\xff", "not UTF-8: invalid start byte", None),
    "stage raises": (
        post_bytes(10_002, text="please EXPLODE"), None, "stage raised RuntimeError", b"test:10002"
    ),
}
TOMBSTONES = 3


@pytest.fixture
def deployment(kafka_bootstrap: str, mongo_uri: str, unique: str) -> Iterator[Deployment]:
    d = Deployment(kafka_bootstrap, mongo_uri, unique, batch_size=100)
    yield d
    d.drop()


def test_poison_goes_to_the_dead_letter_topic_and_the_worker_goes_on(
    deployment: Deployment, triager: Triager, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in deployment.env.items():
        if key.startswith("TRIAGE_"):
            monkeypatch.setenv(key, value)
    from pipeline.settings import Settings

    settings = Settings.from_environment()
    store = deployment.store()
    store.ensure_schema()
    exploding = ExplodingTriager(triager.model, triager.version)
    worker = Worker(deployment.bus(), store, exploding, settings)
    stop = threading.Event()
    totals = BatchStats()
    running = threading.Thread(
        target=worker.run, args=(stop,), kwargs={"on_batch": totals.add}, daemon=True
    )
    running.start()
    n = 300
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
        (post_bytes(i), None, UNKNOWN_HEADERS if i % 7 == 0 else []) for i in range(n)
    ]
    # each poison record among good posts, in turn, and tombstones (null value; kafka-python
    # needs a key with them)
    for k, (value, key, _, _) in enumerate(POISON.values()):
        records.insert(40 * (k + 1), (value, key, []))
    for k in range(TOMBSTONES):
        records.insert(35 * (k + 1), (None, b"test:1" if k else b"\xff\x00", []))
    deployment.produce([])  # the deployment's topics, as the pipeline makes them
    producer = KafkaProducer(bootstrap_servers=deployment.kafka, max_request_size=4 * 1024 * 1024)
    for value, key, headers in records:
        producer.send(f"raw.{deployment.name}", value=value, key=key, headers=headers)
    producer.flush()
    producer.close()
    try:
        wait_for(lambda: stored(deployment) >= n, 240, f"{n} good posts stored")
        bus = deployment.bus()
        wait_for(
            lambda: len(bus.read_all(f"dlq.{deployment.name}", 30)) >= len(POISON),
            60,
            "the dead letters",
        )
        wait_for(lambda: totals.skipped >= TOMBSTONES, 60, "the tombstones skipped")
        assert running.is_alive(), "the worker stopped"
    finally:
        stop.set()
        running.join(60)
        worker.close()
        store.close()
    messages = deployment.bus().read_all(f"dlq.{deployment.name}", 30)
    assert len(messages) == len(POISON)
    assert totals.skipped == TOMBSTONES
    by_original = {}
    for m in messages:
        assert m.value is not None
        letter = DeadLetter.model_validate_json(m.value)
        by_original[base64.b64decode(letter.original)] = (letter, m)
    for what, (value, _, reason, key) in POISON.items():
        assert value in by_original, f"{what}: no dead letter with its original bytes"
        letter, m = by_original[value]
        assert reason in letter.reason, (what, letter.reason)
        assert letter.topic == f"raw.{deployment.name}"
        assert m.key == key, (what, m.key)
        headers = dict(m.headers)
        assert headers[HEADER_STAGE] == letter.stage.encode()
        assert headers[HEADER_REASON].decode() in letter.reason
        assert headers[HEADER_TOPIC] == f"raw.{deployment.name}".encode()
        assert headers[HEADER_PARTITION] == str(letter.partition).encode()
        assert headers[HEADER_OFFSET] == str(letter.offset).encode()
    assert_each_post_once(deployment, n)

"""posts.triaged exactly once for read_committed readers, on the real Kafka: a worker that dies
with a batch published but its transaction not committed, and the worker that takes over."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest

from classifiers.triager import Triager
from pipeline.bus.interface import Consumer, Message
from pipeline.bus.kafka import KafkaBus, KafkaTxnProducer
from pipeline.bus.kafka_records import decode_post
from pipeline.bus.topics import pipeline_topics
from pipeline.records import Post
from pipeline.settings import Settings
from pipeline.worker import Worker
from tests.helpers import post_bytes
from tests.pipeline_runs import Deployment
from tests.test_faults_services import assert_each_post_once

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.faults]


class Died(BaseException):
    """The worker process ending between its publishes and its commit (not an Exception, so
    nothing in the worker catches it, as nothing catches a SIGKILL)."""


@pytest.fixture
def deployment(kafka_bootstrap: str, mongo_uri: str, unique: str) -> Iterator[Deployment]:
    d = Deployment(kafka_bootstrap, mongo_uri, unique, batch_size=50)
    yield d
    d.drop()


def worker_for(deployment: Deployment, triager: Triager, monkeypatch: pytest.MonkeyPatch) -> Worker:
    for key, value in deployment.env.items():
        if key.startswith("TRIAGE_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("TRIAGE_KAFKA_TRANSACTIONS", "1")
    monkeypatch.setenv("TRIAGE_KAFKA_TRANSACTIONAL_ID", f"worker-0.{deployment.name}")
    settings = Settings.from_environment()
    store = deployment.store()
    store.ensure_schema()
    bus = KafkaBus(
        deployment.kafka,
        partitions=2,
        topics=pipeline_topics(settings),
    )
    return Worker(bus, store, triager, settings)


def keys(messages: Sequence[Message]) -> Counter[bytes | None]:
    return Counter(m.key for m in messages)


def test_a_batch_of_a_worker_that_died_before_its_commit_is_seen_once_by_read_committed(
    deployment: Deployment, triager: Triager, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 200
    deployment.produce([post_bytes(i) for i in range(n)])

    dying = worker_for(deployment, triager, monkeypatch)
    assert isinstance(dying.producer, KafkaTxnProducer)
    client = dying.producer._producer

    def die(consumer: Consumer, messages: Sequence[Message]) -> None:
        client.flush()  # the batch's records reached the log, in the open transaction
        raise Died

    dying.producer.commit_transaction = die  # type: ignore[method-assign]
    batch: list[Message] = []
    for _ in range(100):
        batch = dying.poll_batch()
        if batch:
            break
    assert batch, "the first worker got nothing to read"
    with pytest.raises(Died):
        dying.process(batch)
    dying.consumer.close()  # the group sees the member gone; its producer is left as it was
    dying.store.close()

    # the worker that takes over, with the dead one's transactional id (its replica's)
    worker = worker_for(deployment, triager, monkeypatch)
    try:
        worker.run(threading.Event(), idle_exit_s=10)
    finally:
        worker.close()
        worker.store.close()
        client.close(timeout=0)

    bus = deployment.bus()
    published = [
        *bus.read_all(f"triaged.{deployment.name}", 60),
        *bus.read_all(f"spam.{deployment.name}", 60),
    ]
    assert keys(published) == Counter(f"test:{i}".encode() for i in range(n))
    everything = [
        *bus.read_all(f"triaged.{deployment.name}", 60, committed_only=False),
        *bus.read_all(f"spam.{deployment.name}", 60, committed_only=False),
    ]
    twice = {k for k, c in keys(everything).items() if c > 1}
    # the dead worker's batch is in the log, aborted: what a read_uncommitted reader sees twice
    died_with = {p.id.encode() for p in map(decode_post, batch) if isinstance(p, Post)}
    assert died_with and twice == died_with
    assert_each_post_once(deployment, n)

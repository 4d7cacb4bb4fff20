"""The replay flow re-sends dead letters or a time range onto posts.raw, idempotently."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer

from classifiers.triager import Triager
from flows.replay import replay
from pipeline.bus import open_bus
from pipeline.bus.kafka import KafkaBus
from pipeline.records import DeadLetter
from pipeline.settings import Settings
from pipeline.store import open_store
from pipeline.worker import Worker
from tests.flow_runs.conftest import run_artifacts
from tests.helpers import post_bytes

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.slow]
AT = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def letter(original: bytes, stage: str = "triage") -> bytes:
    return DeadLetter(
        reason="stage raised ValueError: a bug, since fixed",
        stage=stage,
        original=base64.b64encode(original).decode(),
        topic="posts.raw",
        failed_at=AT,
    ).model_dump_json().encode()


def produce(
    env: dict[str, str],
    topic: str,
    values: list[bytes],
    at: datetime | None = None,
    partition: int | None = None,
):
    bus = KafkaBus(env["TRIAGE_KAFKA_BOOTSTRAP"], partitions=2)
    bus.ensure_topics([env["TRIAGE_TOPIC_RAW"], env["TRIAGE_TOPIC_DLQ"]])
    producer = KafkaProducer(bootstrap_servers=env["TRIAGE_KAFKA_BOOTSTRAP"])
    stamp = int(at.timestamp() * 1000) if at else None
    for v in values:
        producer.send(env[topic], v, timestamp_ms=stamp, partition=partition)
    producer.flush()
    producer.close()


def run_workers(triager: Triager) -> int:
    """Process what is on posts.raw with a real worker until idle; posts in the store.

    Trend counting is off: its count buckets are nested arrays, which FerretDB v1 refuses."""
    cfg = Settings.from_environment().model_copy(update={"trends_enabled": False})
    store = open_store(cfg)
    store.ensure_schema()
    worker = Worker(open_bus(cfg), store, triager, cfg)
    try:
        worker.run(threading.Event(), idle_exit_s=3)
    finally:
        worker.close()
    n = store.count("posts")
    store.close()
    return n


def test_dead_letters_are_replayed_once_and_land_once(
    deployment_env: dict[str, str], triager: Triager
) -> None:
    letters = [letter(post_bytes(i)) for i in range(4)] + [letter(b"{broken", stage="parse")]
    produce(deployment_env, "TRIAGE_TOPIC_DLQ", letters)

    first = replay(source="dlq", return_state=True)
    assert first.is_completed(), first.message
    assert (first.result()["resent"], first.result()["still_failing"]) == (4, 1)
    table = json.loads(run_artifacts(first)["replay-counts"].data)
    assert sum(r["resent"] for r in table) == 4
    assert run_workers(triager) == 4

    again = replay(source="dlq", return_state=True)
    assert again.is_completed(), again.message
    assert again.result()["resent"] == 0  # the checkpoint: nothing is sent twice
    redo = replay(source="dlq", resume=False, return_state=True)
    assert redo.result()["resent"] == 4  # an explicit redo sends them again...
    assert run_workers(triager) == 4  # ...and the store still holds each post once


def test_a_time_range_of_raw_is_backfilled(deployment_env: dict[str, str]) -> None:
    early = [post_bytes(i) for i in range(3)]
    late = [post_bytes(i) for i in range(10, 13)]
    # partition 1 holds only posts from before the range: none of them may be replayed
    produce(deployment_env, "TRIAGE_TOPIC_RAW", early[:1], at=AT, partition=0)
    produce(deployment_env, "TRIAGE_TOPIC_RAW", early[1:], at=AT, partition=1)
    produce(deployment_env, "TRIAGE_TOPIC_RAW", late, at=AT.replace(hour=12), partition=0)

    state = replay(
        source="raw", since=AT.replace(hour=11), until=AT.replace(hour=13), return_state=True
    )
    assert state.is_completed(), state.message
    assert state.result()["resent"] == 3
    bus = KafkaBus(deployment_env["TRIAGE_KAFKA_BOOTSTRAP"])
    raw = bus.read_all(deployment_env["TRIAGE_TOPIC_RAW"], timeout_s=30)
    ids = [json.loads(m.value)["native_id"] for m in raw]
    assert sorted(ids) == sorted(["0", "1", "2"] + ["10", "11", "12"] * 2)


def test_a_backwards_range_fails_the_run(deployment_env: dict[str, str]) -> None:
    state = replay(source="raw", since=AT.replace(hour=13), until=AT, return_state=True)
    assert state.is_failed()
    assert "must be before until" in state.message

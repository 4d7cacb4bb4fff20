"""The health flow measures the real Kafka and FerretDB, and fails past its thresholds."""

from __future__ import annotations

import json

import pytest

from flows.health import health
from pipeline.kafka_bus import KafkaBus
from tests.flow_runs.conftest import run_artifacts
from tests.helpers import poll_until, post_bytes

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.slow]


def produce(env: dict[str, str], topic: str, values: list[bytes]) -> None:
    bus = KafkaBus(env["TRIAGE_KAFKA_BOOTSTRAP"], partitions=2)
    bus.ensure_topics([env[f"TRIAGE_TOPIC_{t}"] for t in ("RAW", "DLQ", "TRIAGED")])
    producer = bus.producer()
    for v in values:
        producer.send(env[topic], v, key=v[-8:])
    producer.flush()
    producer.close()


def test_lag_past_the_threshold_fails_the_run(deployment_env: dict[str, str]) -> None:
    produce(deployment_env, "TRIAGE_TOPIC_RAW", [post_bytes(i) for i in range(10)])

    state = health(max_lag=3, return_state=True)

    assert state.is_failed()
    assert "lag" in state.message and "> 3" in state.message
    table = json.loads(run_artifacts(state)["health-lag"].data)
    assert sum(row["lag"] for row in table) == 10  # nothing consumed yet: all of it lags
    assert "unhealthy" in run_artifacts(state)["health-report"].data


def test_caught_up_workers_are_healthy_then_new_dead_letters_fail(
    deployment_env: dict[str, str],
) -> None:
    produce(deployment_env, "TRIAGE_TOPIC_RAW", [post_bytes(i) for i in range(10)])
    bus = KafkaBus(deployment_env["TRIAGE_KAFKA_BOOTSTRAP"], partitions=2)
    group, raw = deployment_env["TRIAGE_CONSUMER_GROUP"], deployment_env["TRIAGE_TOPIC_RAW"]
    consumer = bus.consumer(group, [raw])
    consumer.commit(poll_until(consumer, 10))
    consumer.close()

    first = health(max_lag=0, max_new_dead_letters=2, return_state=True)
    assert first.is_completed(), first.message
    report = first.result()
    assert report["lag"] == 0 and report["store"]["posts"] == 0
    assert report["new_dead_letters"] is None  # no earlier run to compare with

    produce(deployment_env, "TRIAGE_TOPIC_DLQ", [b'{"reason": "x"}'] * 3)
    produce(deployment_env, "TRIAGE_TOPIC_TRIAGED", [post_bytes(i) for i in range(4)])
    second = health(max_lag=0, max_new_dead_letters=2, return_state=True)
    assert second.is_failed()
    assert "3 new dead letters" in second.message
    # throughput is measured between the two runs: 4 triaged posts arrived in between
    assert "| triaged per second since last check | n/a |" not in (
        run_artifacts(second)["health-report"].data
    )

"""The health flow measures the real Kafka and FerretDB, and fails past its thresholds."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from dashboards.api import create_app
from dashboards.auth import make_account
from flows.health import health
from flows.run_log import FLOW_RUNS
from pipeline.bus.kafka import KafkaBus
from pipeline.settings import Settings
from pipeline.store.mongo import MongoStore
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


def test_each_flow_keeps_its_latest_run_and_failure_for_the_operator_face(
    deployment_env: dict[str, str],
) -> None:
    produce(deployment_env, "TRIAGE_TOPIC_RAW", [post_bytes(i) for i in range(5)])
    assert health(max_lag=10, return_state=True).is_completed()
    assert health(max_lag=1, return_state=True).is_failed()

    store = MongoStore(deployment_env["TRIAGE_MONGO_URI"], deployment_env["TRIAGE_MONGO_DATABASE"])
    runs = {d["flow"] if not d.get("latest_failure") else "failure": d
            for d in store.find_records(FLOW_RUNS)}
    assert runs["health"]["state"] == "Failed" and runs["failure"]["failed"]
    assert "lag" in runs["failure"]["message"]

    store.save_user(make_account("olga", "correct horse battery", ["operator"]))
    client = TestClient(create_app(store, Settings.from_environment()))
    login = client.post("/api/v1/login", json={"name": "olga", "password": "correct horse battery"})
    assert login.status_code == 200, login.text
    page = client.get("/operator")
    assert page.status_code == 200
    section = page.text[page.text.index('id="flow-runs"'):]
    assert "health" in section and "Failed" in section and "latest failure" in section
    store.close()

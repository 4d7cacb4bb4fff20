"""The alerts flow tells people of a spike on the real Kafka topic, once, and counts it."""

from __future__ import annotations

import json

import pytest

from flows.alerts import alerts
from pipeline.bus.kafka import KafkaBus
from tests.flow_runs.conftest import run_artifacts
from tests.servers import Recorder
from tests.test_alerts import trend

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.slow]


def test_a_run_tells_each_spike_once(
    deployment_env: dict[str, str], provider: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_ALERTS_WEBHOOK_URL", f"{provider.url}/hook/flow")
    monkeypatch.setenv("TRIAGE_ALERTS_GROUP", f"{deployment_env['TRIAGE_CONSUMER_GROUP']}.alerts")
    provider.answers["/hook/"] = (200, {})
    bus = KafkaBus(deployment_env["TRIAGE_KAFKA_BOOTSTRAP"])
    topic = deployment_env["TRIAGE_TOPIC_ALERTS"]
    bus.ensure_topics([topic])
    producer = bus.producer()
    for t in (trend("parcel", 14), trend("parcel", 15)):
        producer.send(topic, t.model_dump_json().encode(), key=t.id.encode())
    producer.flush()
    producer.close()

    state = alerts(seconds=120, idle_s=3, return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["spikes_told"] == 1
    assert [r.json()["text"].split(":")[0] for r in provider.requests] == ["Spike"]
    table = json.loads(run_artifacts(state)["alerts-sent"].data)
    assert table[0]["read"] == 2 and table[0]["by_webhook"] == 1

    again = alerts(seconds=60, idle_s=2, return_state=True)  # nothing new since: nobody told
    assert again.is_completed() and again.result()["spikes_told"] == 0
    assert len(provider.requests) == 1

"""The ingest flow feeds the real Kafka from a connector, bounded in time, and records counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.ingest import ingest
from pipeline.bus.kafka import KafkaBus
from tests.flow_runs.conftest import run_artifacts
from tests.helpers import make_post

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.slow]


def test_replay_is_ingested_and_counted(deployment_env: dict[str, str], tmp_path: Path) -> None:
    posts = tmp_path / "posts.jsonl"
    lines = [make_post(i).model_dump_json() for i in range(12)] + ['{"not": "a post"}']
    posts.write_text("\n".join(lines) + "\n")

    state = ingest(source="replay", options={"path": str(posts)}, seconds=120, return_state=True)

    assert state.is_completed(), state.message
    counts = state.result()
    assert (counts["posts"], counts["dead_letters"]) == (12, 1)
    bus = KafkaBus(deployment_env["TRIAGE_KAFKA_BOOTSTRAP"])
    raw = bus.read_all(deployment_env["TRIAGE_TOPIC_RAW"], timeout_s=30)
    sent = sorted(json.loads(m.value)["native_id"] for m in raw)
    assert sent == sorted(str(i) for i in range(12))
    assert len(bus.read_all(deployment_env["TRIAGE_TOPIC_DLQ"], timeout_s=30)) == 1
    table = json.loads(run_artifacts(state)["ingest-counts"].data)
    assert table[0]["posts"] == 12 and table[0]["dead_letters"] == 1


def test_time_bound_stops_a_slow_source(deployment_env: dict[str, str], tmp_path: Path) -> None:
    posts = tmp_path / "slow.jsonl"
    # one post a minute of source time at real speed: only the first fits in the bound
    posts.write_text(
        "\n".join(make_post(i * 60).model_dump_json() for i in range(5)) + "\n"
    )
    state = ingest(
        source="replay", options={"path": str(posts), "speed": 1.0}, seconds=3, return_state=True
    )
    assert state.is_completed(), state.message
    assert state.result()["posts"] == 1


def test_a_missing_file_fails_the_run_with_its_name(
    deployment_env: dict[str, str], tmp_path: Path
) -> None:
    state = ingest(
        source="replay", options={"path": str(tmp_path / "nope.jsonl")}, return_state=True
    )
    assert state.is_failed()
    assert "nope.jsonl does not exist" in state.message

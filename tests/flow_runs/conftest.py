"""Flows run for real under Prefect's test harness: one temporary Prefect server (SQLite) for the
whole session, offline, against the real Kafka and FerretDB.

The PREFECT_* variables are set here, before any flow module imports Prefect, so that nothing
reads the developer's profile, phones home or starts services the tests do not need.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

_HOME = tempfile.mkdtemp(prefix="prefect-test-home-")
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_API_KEY", None)
for name, value in {
    "PREFECT_HOME": _HOME,
    "PREFECT_PROFILES_PATH": os.path.join(_HOME, "profiles.toml"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # services a flow run under test never needs; each would only compete for the CPU
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_LOGGER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "false",
}.items():
    os.environ[name] = value


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """One temporary Prefect API server (SQLite) for every flow test in the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=600):
        yield


@pytest.fixture
def deployment_env(
    monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, mongo_uri: str, unique: str
) -> Iterator[dict[str, str]]:
    """TRIAGE_* for one isolated deployment: its own topics, consumer group and database, as
    the flows read them at their entry point."""
    env = {
        "TRIAGE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TRIAGE_MONGO_URI": mongo_uri,
        "TRIAGE_MONGO_DATABASE": f"flows_{unique}",
        "TRIAGE_TOPIC_RAW": f"raw.{unique}",
        "TRIAGE_TOPIC_TRIAGED": f"triaged.{unique}",
        "TRIAGE_TOPIC_DLQ": f"dlq.{unique}",
        "TRIAGE_TOPIC_ALERTS": f"alerts.{unique}",
        "TRIAGE_TOPIC_SPAM": f"spam.{unique}",
        "TRIAGE_CONSUMER_GROUP": f"workers.{unique}",
        "TRIAGE_BATCH_WAIT_MS": "100",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    client.drop_database(env["TRIAGE_MONGO_DATABASE"])
    client.close()


def run_artifacts(state: Any) -> dict[str, Any]:
    """The artifacts a finished flow run recorded, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key: a for a in found}

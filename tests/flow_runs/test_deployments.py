"""Deployments declared in code: listed by `triage flows list`, registered with their schedules on
a real Prefect server, and each flow runnable once by hand with `triage flows run`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from flows.deployments import PLAN, deployments
from pipeline.cli.main import app
from pipeline.errors import TriageError
from tests.flow_runs.test_health_flow import produce
from tests.helpers import post_bytes

NAMES = ["ingest", "retrain", "trend-report", "sla-watchdog", "replay", "alerts", "health"]


def test_flows_list_prints_each_name_and_schedule() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "flows", "list"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert sorted(lines) == sorted(NAMES)
    assert "cron * * * * *" in lines["sla-watchdog"]
    assert "cron */5 * * * *" in lines["health"]
    assert "cron 5 * * * * (hourly), cron 15 0 * * * (daily)" in lines["trend-report"]
    assert "on demand" in lines["replay"] and "on demand" in lines["ingest"]
    assert "on demand" in lines["alerts"]


def test_deployments_register_with_their_schedules_on_the_server() -> None:
    from prefect.client.orchestration import get_client

    built = deployments()
    assert [d.name for d in built] == NAMES
    for d in built:
        d.apply()
    with get_client(sync_client=True) as client:
        for plan in PLAN:
            found = client.read_deployment_by_name(f"{plan.name}/{plan.name}")
            crons = sorted(s.schedule.cron for s in found.schedules)  # type: ignore[union-attr]
            assert crons == sorted(s.expression for s in plan.schedules), plan.name
        report = client.read_deployment_by_name("trend-report/trend-report")
        periods = {s.schedule.cron: s.parameters for s in report.schedules}  # type: ignore[union-attr]
        assert periods == {"5 * * * *": {"period": "hour"}, "15 0 * * *": {"period": "day"}}


@pytest.mark.kafka
@pytest.mark.mongo
@pytest.mark.slow
def test_a_flow_runs_once_by_hand_and_a_failed_run_says_why(
    deployment_env: dict[str, str],
) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["flows", "run", "sla-watchdog"])
    assert done.exit_code == 0, done.output
    assert "flow sla-watchdog completed" in done.output

    produce(deployment_env, "TRIAGE_TOPIC_RAW", [post_bytes(i) for i in range(5)])
    failed = runner.invoke(app, ["flows", "run", "health", "--param", "max_lag=1"])
    assert isinstance(failed.exception, TriageError)
    assert str(failed.exception).startswith("flow health failed: unhealthy: partition")

"""The latest run of each flow, and its latest failure, kept in the store for the operator face.

Prefect keeps the full history; the dashboard only needs to say, without reaching the Prefect
server, whether each flow ran lately and how it ended. Hooks run after the run's state is final,
and a store that cannot be reached costs only this summary (Prefect logs the hook's error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.records import utcnow
from pipeline.settings import Settings
from pipeline.store import open_store

if TYPE_CHECKING:  # the dashboard reads FLOW_RUNS without loading Prefect
    from prefect import Flow
    from prefect.client.schemas.objects import FlowRun
    from prefect.states import State

FLOW_RUNS = "flow_runs"


def record_run(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    """A Prefect state hook: keep this run as its flow's latest (and latest failure, if so)."""
    doc = {
        "flow": flow.name,
        "run": flow_run.name,
        "state": state.name,
        "failed": state.is_failed() or state.is_crashed(),
        "message": (state.message or "")[:500],
        "started_at": flow_run.start_time or flow_run.expected_start_time,
        "ended_at": utcnow(),
    }
    store = open_store(Settings.from_environment())
    try:
        store.ensure_schema()
        store.put_record(FLOW_RUNS, flow.name, doc)
        if doc["failed"]:
            store.put_record(FLOW_RUNS, f"{flow.name}:failed", {**doc, "latest_failure": True})
    finally:
        store.close()


RUN_HOOKS: dict[str, Any] = {
    "on_completion": [record_run],
    "on_failure": [record_run],
    "on_crashed": [record_run],
}

"""``triage flows``: list the Prefect deployments, serve them on their schedules, or run one flow
once by hand. Prefect is imported only by the commands that run flows."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer
from rich.console import Console

from pipeline.errors import ConfigError, TriageError

flows_app = typer.Typer(
    help="The Prefect flows operators run: list, serve on schedule, run once.",
    no_args_is_help=True,
)
console = Console()


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value that reads as JSON (numbers, true, objects) is taken as such."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {pair!r} is not key=value")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


@flows_app.command("list")
def flows_list() -> None:
    """Each flow's name, its schedule (cron, UTC) and what it does."""
    from flows.deployments import PLAN

    for p in PLAN:
        print(f"{p.name:<13} {p.schedule:<48} {p.what}")


@flows_app.command("serve")
def flows_serve() -> None:
    """Serve every deployment on its schedule (and for runs started from Prefect's UI)."""
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError(
            "set PREFECT_API_URL to the Prefect server that keeps the schedules, e.g. "
            "http://127.0.0.1:4200/api after `prefect server start`"
        )
    from flows.deployments import serve

    serve()


@flows_app.command("run")
def flows_run(
    name: Annotated[str, typer.Argument(help="the flow: ingest, retrain, health, ...")],
    param: Annotated[
        list[str] | None, typer.Option(help="a flow parameter as key=value (repeatable)")
    ] = None,
) -> None:
    """Run one flow once, here and now, and say how it ended."""
    from flows.deployments import planned

    flow = planned(name).load()
    state: Any = flow(**parse_params(param or []), return_state=True)
    if not state.is_completed():
        cause = state.result(raise_on_failure=False)
        why = str(cause) if isinstance(cause, BaseException) else state.message
        raise TriageError(f"flow {name} {state.type.value.lower()}: {why}")
    console.print(f"flow {name} completed: {state.result()}")

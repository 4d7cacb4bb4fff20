"""The deployments operators run: each flow, its schedule and its default parameters, in code.

``triage flows serve`` serves them all from one process (Prefect's ``serve``) against the Prefect
API in ``PREFECT_API_URL`` (a local ``prefect server start``, or the compose stack's server);
``triage flows list`` prints them. Prefect itself is imported only when a flow is needed, so
listing the plan stays instant.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment


@dataclass(frozen=True)
class Cron:
    expression: str
    parameters: dict[str, Any] = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class Planned:
    name: str
    target: str  # module:function of the flow
    what: str
    schedules: tuple[Cron, ...] = ()

    @property
    def schedule(self) -> str:
        if not self.schedules:
            return "on demand"
        return ", ".join(
            f"cron {s.expression}" + (f" ({s.label})" if s.label else "") for s in self.schedules
        )

    def load(self) -> Flow[..., Any]:
        module, function = self.target.split(":")
        loaded: Flow[..., Any] = getattr(importlib.import_module(module), function)
        return loaded


PLAN: tuple[Planned, ...] = (
    Planned("ingest", "flows.ingest:ingest", "run a connector for a bounded time"),
    Planned(
        "retrain",
        "flows.retrain:retrain",
        "train with agents' corrections; promote only if better",
        (Cron("30 3 * * *", label="daily"),),
    ),
    Planned(
        "trend-report",
        "flows.trend_report:trend_report",
        "write and store the trend report of the last full hour / day",
        (
            Cron("5 * * * *", {"period": "hour"}, "hourly"),
            Cron("15 0 * * *", {"period": "day"}, "daily"),
        ),
    ),
    Planned(
        "sla-watchdog",
        "flows.sla_watchdog:sla_watchdog",
        "release expired leases, re-score, raise SLA warnings and breaches",
        (Cron("* * * * *", label="every minute"),),
    ),
    Planned("replay", "flows.replay:replay", "re-send dead letters or a time range after a fix"),
    Planned(
        "alerts",
        "flows.alerts:alerts",
        "tell people of new and grown spikes (where no alerts service runs)",
    ),
    Planned(
        "health",
        "flows.health:health",
        "lag, throughput, dead letters, store size; fails past thresholds",
        (Cron("*/5 * * * *", label="every 5 minutes"),),
    ),
)


def planned(name: str) -> Planned:
    from pipeline.errors import ConfigError

    for p in PLAN:
        if p.name == name:
            return p
    raise ConfigError(f"no flow {name!r}; flows are {', '.join(p.name for p in PLAN)}")


def deployments() -> list[RunnerDeployment]:
    """One deployment per flow, named like the flow, with its schedules."""
    from prefect.schedules import Cron as PrefectCron

    return [
        cast(
            "RunnerDeployment",  # synchronous here: Prefect dispatches on the calling context
            p.load().to_deployment(
                name=p.name,
                description=p.what,
                tags=["social-triage"],
                schedules=[
                    PrefectCron(s.expression, timezone="UTC", parameters=s.parameters)
                    for s in p.schedules
                ],
            ),
        )
        for p in PLAN
    ]


def serve() -> None:
    """Serve every deployment until stopped: scheduled runs execute in this process."""
    from prefect import serve as prefect_serve

    prefect_serve(*deployments())

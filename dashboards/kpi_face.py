"""KPIs on a page for supervisors and operators: first response and resolution times (median and
90th percentile), SLA attainment, the backlog by band and age, each agent's load and handled
count, automation and reopen rates, over a chosen number of days, with charts.

The numbers are ``pipeline.queue.kpis.compute``'s (the same as ``GET /api/v1/kpis``), computed
from bounded, indexed reads; charts are server-drawn SVG with translated legends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from dashboards import charts
from dashboards.auth import User, require_roles
from dashboards.i18n import translate
from dashboards.pages import language, render
from dashboards.queue_api import services
from pipeline.queue.kpis import AGES, compute
from pipeline.queue.sla import BANDS, FIRST_RESPONSE, RESOLUTION

router = APIRouter(include_in_schema=False)
Viewer = Annotated[User, Depends(require_roles("supervisor", "operator"))]
RANGES = (1, 7, 30, 90)
AGE_COLOURS = {"lt1h": "#90caf9", "1_4h": "#42a5f5", "4_24h": "#ef6c00", "gt24h": "#c62828"}
LOAD_COLOURS = {"holding": "#ef6c00", "handled": "#5c85d6"}


def minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f}"


def percent(share: float | None) -> str:
    return "–" if share is None else f"{share:.0%}"


@router.get("/kpis")
def kpi_page(
    request: Request, user: Viewer, days: Annotated[int, Query(ge=1, le=365)] = 7
) -> Response:
    queue = services(request).queue
    kpis = compute(queue, queue.clock(), timedelta(days=days))
    lang = language(request)

    def t(key: str) -> str:
        return translate(lang, key)

    ages = {key: t(f"age_{key}") for key, _ in AGES}
    backlog = charts.stacked_bars(
        list(BANDS),
        {key: [kpis.backlog_by_age[b][key] for b in BANDS] for key, _ in AGES},
        t("backlog"),
        "backlog",
        names=ages,
        colours=AGE_COLOURS,
    )
    agents = [a.agent for a in kpis.agents] or ["–"]
    load = charts.stacked_bars(
        agents,
        {
            "holding": [a.holding for a in kpis.agents] or [0],
            "handled": [a.resolved for a in kpis.agents] or [0],
        },
        t("agent_load"),
        "load",
        names={"holding": t("holding"), "handled": t("handled")},
        colours=LOAD_COLOURS,
    )
    times = charts.stacked_bars(
        [t("first_response"), t("resolution")],
        {
            "p50": [round((d.median_s or 0) / 60) for d in (kpis.first_response, kpis.resolution)],
            "p90": [
                round(((d.p90_s or 0) - (d.median_s or 0)) / 60)
                for d in (kpis.first_response, kpis.resolution)
            ],
        },
        f"{t('first_response')} / {t('resolution')} ({t('minutes')})",
        "times",
        names={"p50": t("p50"), "p90": t("p90")},
        colours={"p50": "#5c85d6", "p90": "#b0bec5"},
    )
    return render(
        request,
        "kpis.html",
        user,
        active="kpis",
        kpis=kpis,
        days=days,
        ranges=RANGES,
        minutes=minutes,
        percent=percent,
        charts={"backlog": backlog, "load": load, "times": times},
        kinds=(FIRST_RESPONSE, RESOLUTION),
    )

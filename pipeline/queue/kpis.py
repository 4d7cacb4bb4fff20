"""Queue KPIs: how fast customers hear back, how often targets hold, where the work is.

Per-agent load is the number of items held now and resolved in the window: it is there to
spread work fairly, so it carries no per-agent timings.
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime, timedelta

from pydantic import BaseModel

from pipeline.queue.agent_queue import AgentQueue
from pipeline.queue.escalation import ESCALATION, EscalationRecord
from pipeline.queue.sla import BANDS, FIRST_RESPONSE, RESOLUTION
from pipeline.records import QueueItem

STATUSES = ("open", "claimed", "snoozed", "resolved")


class Durations(BaseModel):
    count: int
    median_s: float | None
    p90_s: float | None
    mean_s: float | None


class AgentLoad(BaseModel):
    agent: str
    holding: int
    resolved: int


class Kpis(BaseModel):
    since: datetime
    until: datetime
    first_response: Durations
    resolution: Durations
    sla_attainment: dict[str, float | None]
    sla_decided: dict[str, int]
    backlog_by_band: dict[str, int]
    agents: list[AgentLoad]
    escalations_by_channel: dict[str, int]


def _durations(values: list[float]) -> Durations:
    if not values:
        return Durations(count=0, median_s=None, p90_s=None, mean_s=None)
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return Durations(
        count=len(values),
        median_s=round(statistics.median(ordered), 1),
        p90_s=round(p90, 1),
        mean_s=round(statistics.fmean(ordered), 1),
    )


def compute(queue: AgentQueue, now: datetime, window: timedelta = timedelta(days=7)) -> Kpis:
    """KPIs over items whose post was created in ``window`` before ``now``; backlog and load
    are as of now."""
    since = now - window
    items: list[QueueItem] = [
        i for s in STATUSES for i in queue.store.list_queue(s, limit=1_000_000)
    ]
    recent = [i for i in items if i.post_created_at >= since]
    first = [
        (i.first_response_at - i.post_created_at).total_seconds()
        for i in recent
        if i.first_response_at is not None
    ]
    resolved = [
        (i.resolution.at - i.post_created_at).total_seconds()
        for i in recent
        if i.resolution is not None
    ]
    attainment: dict[str, float | None] = {}
    decided: dict[str, int] = {}
    for kind in (FIRST_RESPONSE, RESOLUTION):
        outcomes = [m for i in recent if (m := queue.sla.met(i, kind)) is not None]
        decided[kind] = len(outcomes)
        attainment[kind] = round(sum(outcomes) / len(outcomes), 4) if outcomes else None
    backlog: Counter[str] = Counter(i.band for i in items if i.status in ("open", "snoozed"))
    holding: Counter[str] = Counter(
        i.agent
        for i in items
        if i.agent and i.status == "claimed" and i.lease_until and i.lease_until >= now
    )
    done = Counter(
        i.resolution.by for i in recent if i.resolution is not None
    )
    names = sorted({p.name for p in queue.agents.all()} | set(holding) | set(done))
    escalations = [
        EscalationRecord.model_validate(d) for d in queue.store.find_records(ESCALATION)
    ]
    by_channel = Counter(e.channel for e in escalations if e.at >= since)
    return Kpis(
        since=since,
        until=now,
        first_response=_durations(first),
        resolution=_durations(resolved),
        sla_attainment=attainment,
        sla_decided=decided,
        backlog_by_band={b: backlog.get(b, 0) for b in BANDS},
        agents=[
            AgentLoad(agent=n, holding=holding.get(n, 0), resolved=done.get(n, 0))
            for n in names
        ],
        escalations_by_channel={c: by_channel.get(c, 0) for c in ("email", "phone", "video")},
    )

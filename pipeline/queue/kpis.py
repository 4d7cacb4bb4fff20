"""Queue KPIs: how fast customers hear back, how often targets hold, where the work is.

Per-agent load is the number of items held now and resolved in the window: it is there to
spread work fairly, so it carries no per-agent timings.

Everything comes from bounded, indexed reads: the items whose post was created in the range
(``Store.queue_between``), the backlog as grouped counts (``Store.backlog``), live leases
(``Store.agent_loads``) and the audit of the range's items; never a read of the whole queue.
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime, timedelta

from pydantic import BaseModel

from pipeline.assist_records import AUTOMATION_AGENT as AUTOMATION
from pipeline.queue.agent_queue import AgentQueue
from pipeline.queue.escalation import ESCALATION, EscalationRecord
from pipeline.queue.sla import BANDS, FIRST_RESPONSE, RESOLUTION

# Backlog age buckets: (key, the oldest age in the bucket); the last one is open-ended.
AGES = (("lt1h", timedelta(hours=1)), ("1_4h", timedelta(hours=4)),
        ("4_24h", timedelta(hours=24)), ("gt24h", timedelta(days=3650)))


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
    backlog_by_age: dict[str, dict[str, int]]
    agents: list[AgentLoad]
    escalations_by_channel: dict[str, int]
    items: int
    resolved: int
    automated: int
    reopened: int
    automation_rate: float | None
    reopen_rate: float | None


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


def compute(
    queue: AgentQueue,
    now: datetime,
    window: timedelta = timedelta(days=7),
    until: datetime | None = None,
) -> Kpis:
    """KPIs over items whose post was created in ``[until - window, until)`` (``until`` is
    ``now`` unless given); backlog and load are as of now."""
    asked_until = until
    until = until or now
    since = until - window
    store = queue.store
    recent = store.queue_between(since, until)
    first = [
        (i.first_response_at - i.post_created_at).total_seconds()
        for i in recent
        if i.first_response_at is not None
    ]
    resolved = [i for i in recent if i.resolution is not None]
    attainment: dict[str, float | None] = {}
    decided: dict[str, int] = {}
    for kind in (FIRST_RESPONSE, RESOLUTION):
        outcomes = [m for i in recent if (m := queue.sla.met(i, kind)) is not None]
        decided[kind] = len(outcomes)
        attainment[kind] = round(sum(outcomes) / len(outcomes), 4) if outcomes else None
    edges = [now] + [now - age for _, age in AGES]
    by_age = store.backlog(edges)
    holding = store.agent_loads(now)
    done = Counter(i.resolution.by for i in resolved if i.resolution is not None)
    automated = done.get(AUTOMATION, 0)
    audit = store.audit_of_items([i.id for i in recent]) if recent else []
    reopened = len({e.item_id for e in audit if e.action == "reopen"})
    ever_resolved = len(resolved) + len(
        {e.item_id for e in audit if e.action == "reopen"} - {i.id for i in resolved}
    )
    names = sorted(
        ({p.name for p in queue.agents.all()} | set(holding) | set(done)) - {AUTOMATION}
    )
    # Escalation records keep their time as JSON text, so the range is applied here; they are
    # few (an hourly quota per agent).
    escalations = [EscalationRecord.model_validate(d) for d in store.find_records(ESCALATION)]
    by_channel = Counter(
        e.channel for e in escalations if e.at >= since and (asked_until is None or e.at < until)
    )
    return Kpis(
        since=since,
        until=until,
        first_response=_durations(first),
        resolution=_durations(
            [(i.resolution.at - i.post_created_at).total_seconds() for i in resolved
             if i.resolution is not None]
        ),
        sla_attainment=attainment,
        sla_decided=decided,
        backlog_by_band={b: sum(by_age.get(b, [])) for b in BANDS},
        backlog_by_age={
            b: {key: n for (key, _), n in zip(AGES, by_age.get(b, [0] * len(AGES)), strict=True)}
            for b in BANDS
        },
        agents=[
            AgentLoad(agent=n, holding=holding.get(n, 0), resolved=done.get(n, 0))
            for n in names
        ],
        escalations_by_channel={c: by_channel.get(c, 0) for c in ("email", "phone", "video")},
        items=len(recent),
        resolved=len(resolved),
        automated=automated,
        reopened=reopened,
        automation_rate=round(automated / len(resolved), 4) if resolved else None,
        reopen_rate=round(reopened / ever_resolved, 4) if ever_resolved else None,
    )

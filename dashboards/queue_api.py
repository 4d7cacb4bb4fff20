"""The agent queue over HTTP, under ``/api/v1``: next, extend, release, reassign, resolve,
snooze, escalate, the item and its customer's context, agents and KPIs.

The acting agent is always the signed-in user, never a field of the request. Agent actions need
the ``agent`` role (or ``admin``); KPIs and reading also allow ``operator``; changing agent
profiles, tiers and identity links is for ``admin``. Refusals are 4xx with a ``detail`` that
names the problem: 404 unknown item, 409 not the holder or the lease expired, 422 bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from dashboards.auth import User, get_store, require_roles
from pipeline.outbound.channels import (
    mailer_from_settings,
    phone_from_settings,
    video_from_settings,
)
from pipeline.outbound.replies import Repliers
from pipeline.queue.agent_queue import AgentQueue
from pipeline.queue.agents import NAME_PATTERN, AgentProfile, Agents
from pipeline.queue.customers import CustomerContext, Customers
from pipeline.queue.escalation import (
    CallState,
    EscalationRecord,
    EscalationRequest,
    Escalations,
)
from pipeline.queue.kpis import Kpis, compute
from pipeline.queue.sla import FIRST_RESPONSE, RESOLUTION, SlaPolicy
from pipeline.records import AwareDatetime, QueueItem
from pipeline.settings import Settings
from pipeline.store.interface import Store

router = APIRouter(prefix="/api/v1", tags=["queue"])
Agent = Annotated[User, Depends(require_roles("agent"))]
Reader = Annotated[User, Depends(require_roles("agent", "operator"))]
Admin = Annotated[User, Depends(require_roles("admin"))]
ItemId = Annotated[str, Path(min_length=3, max_length=300, description="<source>:<native id>")]
ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "no such item"},
    409: {"description": "not the holder, or the lease expired"},
    422: {"description": "bad input"},
}


@dataclass
class QueueServices:
    queue: AgentQueue
    escalations: Escalations
    customers: Customers

    @classmethod
    def from_settings(cls, store: Store, settings: Settings, repliers: Repliers) -> QueueServices:
        agents = Agents(store, timedelta(days=settings.affinity_days))
        queue = AgentQueue(
            store,
            lease=timedelta(minutes=settings.lease_minutes),
            sla=SlaPolicy.from_settings(settings),
            agents=agents,
            repliers=repliers,
        )
        escalations = Escalations(
            queue,
            mailer=mailer_from_settings(settings),
            phone=phone_from_settings(settings),
            video=video_from_settings(settings),
            per_agent_hour=settings.escalations_per_agent_hour,
            credit_limit=settings.escalation_credit_limit,
        )
        return cls(queue, escalations, Customers(queue, escalations))


def services(request: Request) -> QueueServices:
    """Built once per app from its settings; tests may put their own on ``app.state``."""
    found = getattr(request.app.state, "queue_services", None)
    if found is None:
        state = request.app.state
        found = QueueServices.from_settings(get_store(request), state.settings, state.repliers)
        request.app.state.queue_services = found
    return found


Services = Annotated[QueueServices, Depends(services)]


class Deadline(BaseModel):
    due: datetime
    met: bool | None


class ItemView(BaseModel):
    item: QueueItem
    sla: dict[str, Deadline]


class ReleaseBody(BaseModel):
    reason: str = Field(default="", max_length=1000)


class ReassignBody(BaseModel):
    to: str = Field(pattern=NAME_PATTERN, description="the agent who takes it over")
    reason: str = Field(default="", max_length=1000)


class ResolveBody(BaseModel):
    reply: str = Field(min_length=1, max_length=10_000, description="sent to the customer")


class SnoozeBody(BaseModel):
    until: AwareDatetime


class TierBody(BaseModel):
    tier: str | None = Field(description="standard, silver, gold, platinum; null clears it")


class LinkBody(BaseModel):
    other: str = Field(min_length=3, max_length=300, description="the same person elsewhere")


class AgentView(BaseModel):
    profile: AgentProfile
    holding: int


class ProfileBody(BaseModel):
    topics: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    capacity: int = Field(default=3, ge=1, le=100)
    available: bool = True


class CloseBody(BaseModel):
    outcome: str = Field(min_length=1, max_length=1000)


def view(svc: QueueServices, item: QueueItem) -> ItemView:
    sla = svc.queue.sla
    return ItemView(
        item=item,
        sla={k: Deadline(due=sla.due(item, k), met=sla.met(item, k)) for k in (
            FIRST_RESPONSE, RESOLUTION
        )},
    )


@router.post(
    "/queue/next",
    response_model=ItemView,
    responses={204: {"description": "nothing this agent may take"}, **ERRORS},
)
def claim_next(user: Agent, svc: Services) -> ItemView | Response:
    """Claim the highest-priority item the signed-in agent may take, under a lease."""
    item = svc.queue.next_for(user.name)
    return Response(status_code=204) if item is None else view(svc, item)


@router.get("/items/{item_id}", responses=ERRORS)
def get_item(item_id: ItemId, user: Reader, svc: Services) -> ItemView:
    item = svc.queue.store.get_item(item_id)
    if item is None:
        raise HTTPException(404, f"no queue item {item_id!r}")
    return view(svc, item)


@router.post("/items/{item_id}/extend", responses=ERRORS)
def extend(item_id: ItemId, user: Agent, svc: Services) -> ItemView:
    """The agent is working on it: the lease runs again from now."""
    return view(svc, svc.queue.extend(item_id, user.name))


@router.post("/items/{item_id}/release", responses=ERRORS)
def release(
    item_id: ItemId, user: Agent, svc: Services, body: Annotated[ReleaseBody, Body()]
) -> ItemView:
    return view(svc, svc.queue.release(item_id, user.name, body.reason))


@router.post("/items/{item_id}/reassign", responses=ERRORS)
def reassign(
    item_id: ItemId, user: Agent, svc: Services, body: Annotated[ReassignBody, Body()]
) -> ItemView:
    return view(svc, svc.queue.reassign(item_id, user.name, body.to, body.reason))


@router.post("/items/{item_id}/resolve", responses=ERRORS)
def resolve(
    item_id: ItemId, user: Agent, svc: Services, body: Annotated[ResolveBody, Body()]
) -> ItemView:
    """Reply to the customer on their channel and close the item."""
    return view(svc, svc.queue.resolve(item_id, user.name, body.reply))


@router.post("/items/{item_id}/snooze", responses=ERRORS)
def snooze(
    item_id: ItemId, user: Agent, svc: Services, body: Annotated[SnoozeBody, Body()]
) -> ItemView:
    return view(svc, svc.queue.snooze(item_id, user.name, body.until))


@router.post("/items/{item_id}/escalate", status_code=201, responses={
    **ERRORS, 403: {"description": "over the policy's credit limit"},
    429: {"description": "over the hourly escalation limit"},
})
def escalate(
    item_id: ItemId, user: Agent, svc: Services, body: Annotated[EscalationRequest, Body()]
) -> EscalationRecord:
    """Move the conversation to e-mail, a phone callback or video; the customer is told on
    the channel they wrote on."""
    return svc.escalations.escalate(item_id, user.name, body)


@router.post("/escalations/{escalation_id}/close", responses=ERRORS)
def close_escalation(
    escalation_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
    user: Agent,
    svc: Services,
    body: Annotated[CloseBody, Body()],
) -> EscalationRecord:
    return svc.escalations.close(escalation_id, user.name, body.outcome)


@router.get("/callbacks")
def list_callbacks(
    user: Reader, svc: Services, call: Annotated[CallState | None, Query()] = None
) -> list[EscalationRecord]:
    """Phone callbacks, oldest first: scheduled ones wait for their window, which the SLA
    watchdog flow places once it opens; missed ones need an agent to dial by hand."""
    return svc.escalations.callbacks(call)


@router.get("/items/{item_id}/context", responses=ERRORS)
def item_context(
    item_id: ItemId,
    user: Reader,
    svc: Services,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CustomerContext:
    """The customer behind the item: earlier posts and their triage, replies, escalations."""
    return svc.customers.context_for_item(item_id, limit)


@router.get("/customers/{author_id}/context", responses=ERRORS)
def customer_context(
    author_id: ItemId,
    user: Reader,
    svc: Services,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CustomerContext:
    return svc.customers.context(author_id, limit)


@router.put("/customers/{author_id}/tier", responses=ERRORS)
def set_tier(
    author_id: ItemId, user: Admin, svc: Services, body: Annotated[TierBody, Body()]
) -> dict[str, str | None]:
    svc.queue.set_tier(author_id, body.tier, user.name)
    return {"author_id": author_id, "tier": body.tier}


@router.post("/customers/{author_id}/links", responses=ERRORS)
def link_customer(
    author_id: ItemId, user: Admin, svc: Services, body: Annotated[LinkBody, Body()]
) -> list[str]:
    """Record that two authors are the same person (on different sources)."""
    return svc.customers.link(author_id, body.other, user.name)


@router.get("/agents")
def list_agents(user: Reader, svc: Services) -> list[AgentView]:
    load = svc.queue.agents.load(svc.queue.clock())
    return [AgentView(profile=p, holding=load[p.name]) for p in svc.queue.agents.all()]


@router.put("/agents/{name}", responses=ERRORS)
def put_agent(
    name: Annotated[str, Path(pattern=NAME_PATTERN)],
    user: Admin,
    svc: Services,
    body: Annotated[ProfileBody, Body()],
) -> AgentProfile:
    """Create or change an agent's skills, capacity and availability."""
    return svc.queue.agents.put(AgentProfile(name=name, **body.model_dump()))


@router.get("/kpis")
def kpis(
    user: Annotated[User, Depends(require_roles("agent", "operator", "supervisor"))],
    svc: Services,
    days: Annotated[float, Query(gt=0, le=366, description="window, in days")] = 7.0,
) -> Kpis:
    return compute(svc.queue, svc.queue.clock(), timedelta(days=days))

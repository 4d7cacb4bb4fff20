"""Incidents over HTTP, under ``/api/v1``: the spikes grouped for agents, each with its items
and suggested bulk reply, and resolving one with a reply sent to each of its customers.

Reading needs the ``agent`` or ``operator`` role, resolving the ``agent`` role (admin passes
both); the acting agent is the signed-in user, and the replies go out through the queue's
repliers (``dashboards.queue_api.services``). Refusals: 404 unknown incident, 409 already
resolved, 422 bad input. Incident ids hold a spike's key (``#tag``, two words), so clients
URL-encode them in paths.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, Field

from dashboards.auth import User, get_store, require_roles
from dashboards.queue_api import Services
from pipeline.records import QueueItem, utcnow
from pipeline.store.interface import Store
from pipeline.trends.incidents import Incident, get_incident, incidents, resolve_incident

router = APIRouter(prefix="/api/v1", tags=["incidents"])
Agent = Annotated[User, Depends(require_roles("agent"))]
Reader = Annotated[User, Depends(require_roles("agent", "operator"))]
StoreDep = Annotated[Store, Depends(get_store)]
IncidentId = Annotated[str, Path(min_length=3, max_length=400, description="incident:<trend id>")]
ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "no such incident"},
    409: {"description": "already resolved"},
    422: {"description": "bad input"},
}


class IncidentView(BaseModel):
    incident: Incident
    items: list[QueueItem] = Field(description="its queue items as they are now")


class ResolveBody(BaseModel):
    reply: str = Field(min_length=1, max_length=10_000, description="sent to every customer")


@router.get("/incidents")
def list_incidents(
    user: Reader,
    store: StoreDep,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = "open",
) -> list[Incident]:
    """Incidents with their count and suggested reply (open ones unless ``status`` says)."""
    return incidents(store, status)


@router.get("/incidents/{incident_id}", responses=ERRORS)
def get_one(incident_id: IncidentId, user: Reader, store: StoreDep) -> IncidentView:
    incident = get_incident(store, incident_id)
    items = [store.get_item(i) for i in incident.item_ids]
    return IncidentView(incident=incident, items=[i for i in items if i is not None])


@router.post("/incidents/{incident_id}/resolve", responses=ERRORS)
def resolve(
    incident_id: IncidentId, user: Agent, svc: Services, body: Annotated[ResolveBody, Body()]
) -> Incident:
    """Reply to the author of every item that no other agent holds, on their channel, and
    resolve it with its audit record. The answer lists the items resolved and those skipped
    with why; while a reply could not be sent the incident stays open, to resolve again."""
    return resolve_incident(svc.queue, incident_id, user.name, body.reply, utcnow())

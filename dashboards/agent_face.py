"""The agent console: the queue by priority with its reasons, claim, and work on one item.

Every action goes through the queue's rules (``pipeline.queue.AgentQueue``): a claim is exclusive
and every change is a compare-and-set, so when two agents act on one item only one succeeds and
the other is told who holds it. The queue and the open item's ownership refresh every two seconds
(``data-refresh`` in the page), so nobody works from a stale view.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dashboards.auth import User, get_store, require_roles
from dashboards.pages import flash, fragment, render, templates
from pipeline.queue import AgentQueue, QueueError
from pipeline.records import AuditEntry, QueueItem, utcnow
from pipeline.store import Store

router = APIRouter(include_in_schema=False)
Agent = Annotated[User, Depends(require_roles("agent"))]
StoreDep = Annotated[Store, Depends(get_store)]
TOPICS = (
    "delivery", "billing", "product_defect", "safety", "account", "praise", "question", "other"
)


def visible_queue(store: Store, limit: int = 50) -> list[QueueItem]:
    """Open and claimed items together, most urgent first, so ownership is always in view."""
    items = store.list_queue("open", limit) + store.list_queue("claimed", limit)
    return sorted(items, key=lambda i: (-i.priority, i.enqueued_at))[:limit]


def item_context(store: Store, item: QueueItem, user: User) -> dict[str, Any]:
    post = store.get_post(item.id) or {}
    return {
        "item": item,
        "post": post,
        "author": store.get_author(item.author_id),
        "mine": is_mine(item, user),
        "topics": TOPICS,
    }


def is_mine(item: QueueItem, user: User) -> bool:
    lease = item.lease_until
    return item.status == "claimed" and item.agent == user.name and lease is not None and (
        lease > utcnow()
    )


def queue_for(request: Request) -> AgentQueue:
    settings = request.app.state.settings
    minutes = getattr(settings, "agent_lease_minutes", 10.0)
    return AgentQueue(request.app.state.store, lease=timedelta(minutes=minutes))


def back_to(item_id: str | None = None) -> RedirectResponse:
    return RedirectResponse(f"/agent?item={item_id}" if item_id else "/agent", status_code=303)


@router.get("/agent")
def agent_page(request: Request, user: Agent, store: StoreDep, item: str | None = None) -> Response:
    context: dict[str, Any] = {"queue": visible_queue(store), "selected": item, "active": "agent"}
    if item is not None:
        found = store.get_item(item)
        if found is not None:
            context.update(item_context(store, found, user))
    return render(request, "agent.html", user, **context)


@router.get("/agent/live/queue")
def live_queue(request: Request, user: Agent, store: StoreDep, item: str | None = None) -> Response:
    return fragment(request, "agent_queue.html", user, queue=visible_queue(store), selected=item)


@router.get("/agent/live/owner/{item_id}")
def live_owner(request: Request, item_id: str, user: Agent, store: StoreDep) -> HTMLResponse:
    found = store.get_item(item_id)
    if found is None:
        return HTMLResponse("", status_code=404)
    return fragment(request, "agent_owner.html", user, item=found, mine=is_mine(found, user))


@router.post("/agent/claim")
def claim(request: Request, user: Agent) -> Response:
    item = queue_for(request).claim_next(user.name)
    if item is None:
        flash(request, "nothing to claim", "error")
        return back_to()
    return back_to(item.id)


def act(request: Request, item_id: str, do: Any, done: str) -> Response:
    """Run one queue action; a refusal (not the holder, lease gone) is shown, never a crash."""
    try:
        do()
    except QueueError as exc:
        flash(request, str(exc), "error")
        return back_to(item_id)
    flash(request, done)
    return back_to(item_id)


@router.post("/agent/items/{item_id}/resolve")
def resolve(
    request: Request, item_id: str, user: Agent, reply: Annotated[str, Form()]
) -> Response:
    return act(
        request,
        item_id,
        lambda: queue_for(request).resolve(item_id, user.name, reply),
        f"{item_id} resolved",
    )


@router.post("/agent/items/{item_id}/release")
def release(
    request: Request, item_id: str, user: Agent, reason: Annotated[str, Form()] = ""
) -> Response:
    return act(
        request,
        item_id,
        lambda: queue_for(request).release(item_id, user.name, reason),
        f"{item_id} released",
    )


@router.post("/agent/items/{item_id}/relabel")
def relabel(
    request: Request,
    item_id: str,
    user: Agent,
    store: StoreDep,
    topic: Annotated[str, Form(pattern=r"^[a-z_]{1,40}$")],
) -> Response:
    """Keep the agent's correction, with the text, for the next training run."""
    item = store.get_item(item_id)
    if item is None:
        flash(request, f"no queue item {item_id!r}", "error")
        return back_to()
    store.record_audit(
        [
            AuditEntry(
                at=utcnow(),
                actor=user.name,
                action="relabel",
                item_id=item_id,
                detail={"task": "topic", "was": item.topic, "now": topic, "text": item.text},
            )
        ]
    )
    flash(request, f"topic of {item_id} corrected to {topic}: kept for retraining")
    return back_to(item_id)


def due_at(item: QueueItem) -> datetime:
    """When the item's resolution target falls."""
    minutes = {"P1": 240, "P2": 480, "P3": 1440, "P4": 4320}[item.band]
    return item.post_created_at + timedelta(minutes=minutes)


templates.env.globals["due_at"] = due_at

"""The agent console: the queue by priority with its reasons, claim, and work on one item.

Every action goes through the queue's rules (``pipeline.queue.agent_queue.AgentQueue``): a claim
is exclusive and every change is a compare-and-set, so when two agents act on one item only one
succeeds and the other is told who holds it. The queue and the open item's ownership refresh
every two seconds (``data-refresh`` in the page), so nobody works from a stale view. Next to the
open item the assist panel (``pipeline.assist.assistant``) shows similar resolved cases with their
replies and outcomes, suggested replies filled from the post (edited, then copied into the
reply), the tone cue and the best knowledge articles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from dashboards.assist_api import services as assist_services
from dashboards.auth import User, get_store, require_roles
from dashboards.pages import flash, fragment, render, say
from dashboards.queue_api import services
from pipeline.assist.corrections import record_correction
from pipeline.errors import TriageError
from pipeline.outbound.replies import RECORD_ONLY_SOURCES
from pipeline.queue.agent_queue import AgentQueue, QueueError
from pipeline.queue.approvals import Approvals
from pipeline.queue.escalation import EscalationRecord, EscalationRequest
from pipeline.queue.sla import RESOLUTION, SlaPolicy
from pipeline.records import QueueItem, utcnow
from pipeline.store.interface import QueueQuery, Store
from pipeline.trends.incidents import incidents, resolve_incident

router = APIRouter(include_in_schema=False)
Agent = Annotated[User, Depends(require_roles("agent"))]
StoreDep = Annotated[Store, Depends(get_store)]
CHANNELS = ("email", "phone", "video")
# The topic labels of the shipped model, in the order the relabel menu lists them.
TOPICS = ("account", "billing", "delivery", "general", "praise", "product_defect")


PAGE_SIZE = 25
# The longest reply each channel takes; the reply box counts down to it.
REPLY_LIMITS = {"x": 280, "twitter": 280, "reddit": 10_000}
SLA_STATES = ("overdue", "due_soon", "on_track")
# Sources with a connector that replies, then those whose replies are only recorded.
CHANNEL_CHOICES = tuple(
    dict.fromkeys(("x", "reddit", "twitter", "sample", *RECORD_ONLY_SOURCES))
)
FILTERS = ("band", "topic", "language", "channel", "sla", "q", "page")


@dataclass(frozen=True)
class QueueView:
    """The queue as one agent filters it: the page shown, and how to ask for its neighbours."""

    items: list[QueueItem]
    total: int
    page: int
    pages: int
    filters: dict[str, str]
    handles: dict[str, str]

    def link(self, **changes: Any) -> str:
        """This view's URL with some filters changed (paging, an item opened)."""
        params = {k: v for k, v in {**self.filters, **changes}.items() if v not in ("", None)}
        return "/agent" + ("?" + query_string(params) if params else "")


def query_string(params: dict[str, Any]) -> str:
    """Query parameters with item ids kept readable (``test:2100``, not ``test%3A2100``)."""
    return urlencode(params, safe=":", quote_via=quote)


def queue_query(request: Request, filters: dict[str, str], page: int) -> QueueQuery:
    """Filters as the store asks them; an SLA state becomes a per-band range of creation times
    (of the first-response target, the next one an unanswered item has to meet)."""
    policy = SlaPolicy.from_settings(request.app.state.settings)
    now = utcnow()
    due = {b: now - w for b, w in policy.first_response.items()}
    warn = {b: now - w * policy.warn_fraction for b, w in policy.first_response.items()}
    before, after = {
        "overdue": (due, None),
        "due_soon": (warn, due),
        "on_track": (None, warn),
    }.get(filters.get("sla", ""), (None, None))

    def one(key: str) -> tuple[str, ...]:
        return (filters[key],) if filters.get(key) else ()

    return QueueQuery(
        bands=one("band"),
        topics=one("topic"),
        languages=one("language"),
        sources=one("channel"),
        search=filters.get("q", "").strip(),
        created_before=before,
        created_after=after,
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )


def queue_view(request: Request, store: Store) -> QueueView:
    filters = {k: request.query_params.get(k, "") for k in FILTERS if k != "page"}
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    found = store.queue_page(queue_query(request, filters, page))
    return QueueView(
        items=found.items,
        total=found.total,
        page=page,
        pages=max(1, -(-found.total // PAGE_SIZE)),
        filters={**filters, "page": str(page) if page > 1 else ""},
        handles=store.author_handles(sorted({i.author_id for i in found.items})),
    )


def versions_once(versions: dict[str, str]) -> list[tuple[str, list[str]]]:
    """Model versions grouped, so one bundle's version shows once with the tasks it ran."""
    grouped: dict[str, list[str]] = {}
    for task, version in versions.items():
        grouped.setdefault(version, []).append(task)
    return sorted(grouped.items())


def item_context(request: Request, item: QueueItem, user: User) -> dict[str, Any]:
    context = services(request).customers.context(item.author_id)
    return {
        "item": item,
        "author": context.profile,
        "tier": context.tier,
        "history": [p for p in context.posts if p.id != item.id],
        "replies": context.replies,
        "escalations": context.open_escalations,
        "assist": assist_services(request).assistant.assist(item),
        "mine": is_mine(item, user),
        "topics": TOPICS,
        "channels": CHANNELS,
        "versions": versions_once(item.model_versions),
        "reply_limit": REPLY_LIMITS.get(item.source),
        "requests": approvals(request).find(item_id=item.id),
    }


def approvals(request: Request) -> Approvals:
    """Goodwill approvals, built once per app on the queue the rest of the API uses."""
    found = getattr(request.app.state, "approvals", None)
    if found is None:
        settings = request.app.state.settings
        found = Approvals(
            services(request).queue,
            limit=settings.goodwill_limit,
            daily_cap=settings.goodwill_daily_cap,
            currency=settings.currency,
        )
        request.app.state.approvals = found
    return found


def is_mine(item: QueueItem, user: User) -> bool:
    lease = item.lease_until
    return item.status == "claimed" and item.agent == user.name and lease is not None and (
        lease > utcnow()
    )


def queue_for(request: Request) -> AgentQueue:
    return services(request).queue


def back_to(item_id: str | None = None) -> RedirectResponse:
    where = "/agent?" + query_string({"item": item_id}) if item_id else "/agent"
    return RedirectResponse(where, status_code=303)


def page_context(request: Request, store: Store, item: str | None) -> dict[str, Any]:
    view = queue_view(request, store)
    return {
        "view": view,
        "queue": view.items,
        "selected": item,
        "due_at": deadlines(request),
        "refresh": "/agent/live/queue?" + request.url.query,
        "sla_states": SLA_STATES,
        "bands": ("P1", "P2", "P3", "P4"),
        "topic_choices": TOPICS,
        "language_choices": ("en", "zh"),
        "channel_choices": CHANNEL_CHOICES,
    }


@router.get("/agent")
def agent_page(request: Request, user: Agent, store: StoreDep, item: str | None = None) -> Response:
    context: dict[str, Any] = {
        **page_context(request, store, item),
        "active": "agent",
        "incidents": incidents(store, "open"),
    }
    if item is not None:
        found = store.get_item(item)
        if found is not None:
            context.update(item_context(request, found, user))
    return render(request, "agent.html", user, **context)


@router.get("/agent/live/queue")
def live_queue(request: Request, user: Agent, store: StoreDep, item: str | None = None) -> Response:
    return fragment(request, "agent_queue.html", user, **page_context(request, store, item))


@router.get("/agent/live/owner/{item_id}")
def live_owner(request: Request, item_id: str, user: Agent, store: StoreDep) -> HTMLResponse:
    found = store.get_item(item_id)
    if found is None:
        return HTMLResponse("", status_code=404)
    return fragment(request, "agent_owner.html", user, item=found, mine=is_mine(found, user))


@router.post("/agent/claim")
def claim(request: Request, user: Agent) -> Response:
    """Route by the agent's profile (skills, capacity, affinity) where an admin set one."""
    return claim_for(request, user)


def claim_for(request: Request, user: User) -> Response:
    queue = queue_for(request)
    try:
        if queue.agents.get(user.name) is not None:
            item = queue.next_for(user.name)
        else:
            item = queue.claim_next(user.name)
    except QueueError as exc:
        flash(request, str(exc), "error")
        return back_to()
    if item is None:
        say(request, "nothing_to_claim", "error")
        return back_to()
    return back_to(item.id)


def act(request: Request, item_id: str, do: Any, done: str, **values: Any) -> Response:
    """Run one queue action; a refusal (not the holder, lease gone) is shown, never a crash;
    ``done`` is the message key said on success."""
    try:
        do()
    except QueueError as exc:
        flash(request, str(exc), "error")
        return back_to(item_id)
    say(request, done, item=item_id, **values)
    return back_to(item_id)


@router.post("/agent/items/{item_id}/resolve")
def resolve(
    request: Request,
    item_id: str,
    user: Agent,
    reply: Annotated[str, Form()],
    then: Annotated[str, Form()] = "",
) -> Response:
    """Send the reply and resolve; with ``then=next`` ("send and next") claim the next item."""
    try:
        queue_for(request).resolve(item_id, user.name, reply)
    except (QueueError, TriageError) as exc:
        flash(request, str(exc), "error")
        return back_to(item_id)
    say(request, "flash_resolved", item=item_id)
    return claim_for(request, user) if then == "next" else back_to(item_id)


@router.post("/agent/items/{item_id}/release")
def release(
    request: Request, item_id: str, user: Agent, reason: Annotated[str, Form()] = ""
) -> Response:
    return act(
        request,
        item_id,
        lambda: queue_for(request).release(item_id, user.name, reason),
        "flash_released",
    )


@router.post("/agent/items/{item_id}/relabel")
def relabel(
    request: Request,
    item_id: str,
    user: Agent,
    store: StoreDep,
    topic: Annotated[str, Form(pattern="^(" + "|".join(TOPICS) + ")$")],
) -> Response:
    """Keep the agent's correction for the next retrain flow (``pipeline/assist/corrections.py``),
    with the post's text and the model's labels, and audit it."""
    try:
        record_correction(store, item_id, "topic", topic, user.name)
    except TriageError as exc:
        flash(request, str(exc), "error")
        return back_to()
    say(request, "flash_relabelled", item=item_id, topic=topic)
    return back_to(item_id)


@router.post("/agent/items/{item_id}/escalate")
def escalate(
    request: Request,
    item_id: str,
    user: Agent,
    channel: Annotated[str, Form()],
    reason: Annotated[str, Form()],
    email: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
    credit: Annotated[float, Form(ge=0)] = 0.0,
    window_hours: Annotated[float, Form(gt=0, le=72)] = 2.0,
) -> Response:
    """Move the conversation to e-mail, a phone callback or video, inside the policy."""
    now = utcnow()
    fields: dict[str, Any] = {"channel": channel, "reason": reason, "credit": credit}
    if channel == "email":
        fields |= {"email": email or None, "message": message or None}
    elif channel == "phone":
        fields |= {
            "phone": phone or None,
            "window_start": now,
            "window_end": now + timedelta(hours=window_hours),
        }
    try:
        request_ = EscalationRequest.model_validate(fields)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in problem["loc"])
        flash(request, f"escalation: {where + ': ' if where else ''}{problem['msg']}", "error")
        return back_to(item_id)
    record: list[EscalationRecord] = []
    return act(
        request,
        item_id,
        lambda: record.append(services(request).escalations.escalate(item_id, user.name, request_)),
        "flash_escalated",
        channel=channel,
    )


def deadlines(request: Request) -> Callable[[QueueItem], datetime]:
    """The next SLA deadline an item still has to meet (first response, then resolution)."""
    policy = SlaPolicy.from_settings(request.app.state.settings)

    def due(item: QueueItem) -> datetime:
        return min(policy.due(item, kind) for kind in policy.pending(item) or [RESOLUTION])

    return due


@router.post("/agent/incidents/{incident_id}/resolve")
def resolve_incident_form(
    request: Request,
    incident_id: str,
    user: Agent,
    reply: Annotated[str, Form()],
) -> Response:
    """One reply, sent to the author of every item of a spike's incident that nobody else
    holds."""
    try:
        done = resolve_incident(queue_for(request), incident_id, user.name, reply, utcnow())
    except TriageError as exc:
        flash(request, str(exc), "error")
        return back_to()
    skipped = "".join(f"; {i}: {why}" for i, why in done.skip_reasons.items())
    flash(
        request,
        f"incident {incident_id}: {len(done.resolved_items)} items resolved{skipped}",
        "error" if done.status == "open" else "ok",
    )
    return back_to()

"""Approvals over HTTP and in the browser: agents ask for goodwill on the item they hold and see
the answer live; supervisors approve or deny with a reason (``pipeline/queue/approvals.py``).

API (``/api/v1``): ``POST /items/{id}/goodwill`` (agent, holder), ``GET /approvals`` (supervisor;
an agent sees their own), ``GET /approvals/{id}``, ``POST /approvals/{id}/approve`` and
``/deny`` (supervisor). Pages: the supervisor's ``/approvals``; in the agent console, the
goodwill form and the item's requests, refreshed every two seconds.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError

from dashboards.agent_face import approvals, back_to
from dashboards.auth import User, require_roles
from dashboards.i18n import label, reason
from dashboards.pages import flash, fragment, language, render, say
from pipeline.queue.agent_queue import QueueError
from pipeline.queue.approvals import Approval, Approvals, GoodwillRequest

api = APIRouter(prefix="/api/v1", tags=["approvals"])
router = APIRouter(include_in_schema=False)
Agent = Annotated[User, Depends(require_roles("agent"))]
Supervisor = Annotated[User, Depends(require_roles("supervisor"))]
Reader = Annotated[User, Depends(require_roles("agent", "supervisor"))]
ApprovalId = Annotated[str, Path(min_length=1, max_length=64)]
ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "deciding on one's own request"},
    404: {"description": "no such item or approval"},
    409: {"description": "not the holder, or already decided"},
    422: {"description": "bad input"},
}


Svc = Annotated[Approvals, Depends(approvals)]


class Decision(BaseModel):
    reason: str = Field(min_length=3, max_length=1000, description="why, for the agent and audit")


def is_supervisor(user: User) -> bool:
    return user.has_any(("supervisor",))


@api.post("/items/{item_id}/goodwill", responses=ERRORS, status_code=201)
def ask(
    item_id: Annotated[str, Path(min_length=3, max_length=300)],
    user: Agent,
    svc: Svc,
    body: Annotated[GoodwillRequest, Body()],
) -> Approval:
    """A goodwill credit or refund on the item the agent holds: ``granted`` within the limit and
    the agent's daily cap, otherwise ``pending`` a supervisor's decision."""
    return svc.request(item_id, user.name, body)


@api.get("/approvals")
def list_approvals(
    user: Reader,
    svc: Svc,
    status: Annotated[Literal["pending", "granted", "approved", "denied"] | None, Query()] = None,
) -> list[Approval]:
    """Supervisors see everyone's requests; an agent sees their own."""
    return svc.find(status=status, agent=None if is_supervisor(user) else user.name)


@api.get("/approvals/{approval_id}", responses=ERRORS)
def get_approval(approval_id: ApprovalId, user: Reader, svc: Svc) -> Approval:
    found = svc.get(approval_id)
    if found is None or (found.agent != user.name and not is_supervisor(user)):
        raise HTTPException(404, f"no approval {approval_id}")
    return found


@api.post("/approvals/{approval_id}/approve", responses=ERRORS)
def approve(
    approval_id: ApprovalId, user: Supervisor, svc: Svc, body: Annotated[Decision, Body()]
) -> Approval:
    return svc.decide(approval_id, user.name, True, body.reason)


@api.post("/approvals/{approval_id}/deny", responses=ERRORS)
def deny(
    approval_id: ApprovalId, user: Supervisor, svc: Svc, body: Annotated[Decision, Body()]
) -> Approval:
    return svc.decide(approval_id, user.name, False, body.reason)


# ---- pages


def amounts(approval: Approval, lang: str) -> dict[str, str]:
    return {
        "kind": label(lang, "kind", approval.kind),
        "amount": f"{approval.amount:g}",
        "currency": approval.currency,
    }



@router.get("/approvals")
def approvals_page(request: Request, user: Supervisor, svc: Svc) -> Response:
    return render(
        request,
        "approvals.html",
        user,
        active="approvals",
        pending=svc.find(status="pending"),
        decided=[a for a in svc.find()[:50] if a.status != "pending"],
        limit=svc.limit,
        cap=svc.daily_cap,
        currency=svc.currency,
    )


@router.post("/approvals/{approval_id}/decide")
def decide_form(
    request: Request,
    approval_id: str,
    user: Supervisor,
    svc: Svc,
    decision: Annotated[Literal["approve", "deny"], Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    try:
        body = Decision(reason=reason)
        done = svc.decide(approval_id, user.name, decision == "approve", body.reason)
    except ValidationError:
        flash(request, "give a reason of at least 3 characters", "error")
    except QueueError as exc:
        flash(request, str(exc), "error")
    else:
        say(request, f"flash_goodwill_{done.status}", **amounts(done, language(request)))
    return RedirectResponse("/approvals", status_code=303)


@router.post("/agent/items/{item_id}/goodwill")
def goodwill_form(
    request: Request,
    item_id: str,
    user: Agent,
    svc: Svc,
    amount: Annotated[str, Form()],
    kind: Annotated[str, Form()] = "credit",
    note: Annotated[str, Form()] = "",
) -> Response:
    back = back_to(item_id)
    try:
        asked = GoodwillRequest.model_validate({"kind": kind, "amount": amount, "note": note})
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        flash(request, f"goodwill: {'.'.join(map(str, problem['loc']))}: {problem['msg']}", "error")
        return back
    try:
        done = svc.request(item_id, user.name, asked)
    except QueueError as exc:
        flash(request, str(exc), "error")
        return back
    lang = language(request)
    say(request, f"flash_goodwill_{done.status}", **amounts(done, lang), why=reason(lang, done.why))
    return back


@router.get("/agent/live/approvals/{item_id}")
def live_approvals(request: Request, item_id: str, user: Agent, svc: Svc) -> HTMLResponse:
    return fragment(
        request, "agent_approvals.html", user, requests=svc.find(item_id=item_id)
    )

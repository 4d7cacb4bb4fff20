"""Agent assist over HTTP, under ``/api/v1/assist``: what agents read next to an item, and what
operators keep (reply templates, knowledge articles, automation rules, the off switch and cap).

Agents (and operators) read; only operators (and admins) change templates, knowledge and
automation, or run it. The similar-cases index lives with the app (``app.state.assist``) and takes
in newly resolved items on every read. Replies go out through ``app.state.repliers`` (a
``pipeline.outbound.replies.Repliers``), by default the X and Reddit connectors configured in the
settings; a source without a way back to the customer is never answered automatically.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError

from dashboards.auth import User, require_roles
from pipeline.assist.assistant import Assistant
from pipeline.assist.automation import Automation, ReopenedReply
from pipeline.assist_records import (
    Assistance,
    AutomationRule,
    AutomationSettings,
    KnowledgeArticle,
    ReplyTemplate,
)
from pipeline.queue.agent_queue import QueueError
from pipeline.records import QueueItem, utcnow

T = TypeVar("T", bound=BaseModel)
router = APIRouter(prefix="/api/v1/assist", tags=["assist"], responses={
    404: {"description": "no such item, template, article or rule"},
    409: {"description": "the item is not in a state that allows this"},
})
Reader = Annotated[User, Depends(require_roles("agent", "operator"))]
Operator = Annotated[User, Depends(require_roles("operator"))]
# ASCII only: the schema's pattern is read by JSON Schema clients, whose \w is ASCII.
DocId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="letters, digits, . _ -")
]


class TemplateIn(BaseModel):
    topic: str
    language: str
    title: str
    body: str = Field(description="may use {order_number}, {product} and {handle}")


class ArticleIn(BaseModel):
    title: str
    body: str
    language: str
    topics: list[str] = Field(default_factory=list)


class RuleIn(BaseModel):
    template_id: str
    threshold: float = Field(description="least topic confidence, 0.5 to 1")
    max_negative: float = Field(default=0.3, description="most negative sentiment, 0 to 1")
    enabled: bool = True


class SettingsIn(BaseModel):
    enabled: bool
    daily_cap: int = Field(ge=0, le=100_000)


class AutomationView(BaseModel):
    settings: AutomationSettings
    rules: list[AutomationRule]
    sent_today: int


class DecisionOut(BaseModel):
    item_id: str
    automated: bool
    reason: str


class ReopenIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class Services:
    def __init__(self, request: Request) -> None:
        store = request.app.state.store
        self.assistant = Assistant(store)
        self.automation = Automation(store, self.assistant, request.app.state.repliers)


def services(request: Request) -> Services:
    """One assistant (and its index) per app, made on first use."""
    found = getattr(request.app.state, "assist", None)
    if found is None:
        found = request.app.state.assist = Services(request)
    return found


Svc = Annotated[Services, Depends(services)]


def _valid(model: type[T], **values: object) -> T:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise HTTPException(422, f"{where}: {first['msg']}" if where else first["msg"]) from exc


def _queue_error(exc: QueueError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


@router.get("/items/{item_id}")
def assist_item(
    item_id: str, user: Reader, svc: Svc, k: Annotated[int, Query(ge=1, le=20)] = 5
) -> Assistance:
    """Similar past cases, suggested replies, a tone cue and knowledge for one queue item."""
    item = svc.assistant.store.get_item(item_id)
    if item is None:
        raise HTTPException(404, f"no queue item {item_id!r}")
    return svc.assistant.assist(item, k)


@router.post("/items/{item_id}/reopen")
def reopen_item(item_id: str, body: ReopenIn, user: Reader, svc: Svc) -> QueueItem:
    """Reverse a resolution (an automated reply that was wrong): back to the queue, audited."""
    try:
        return svc.automation.reopen(item_id, user.name, body.reason)
    except QueueError as exc:
        raise _queue_error(exc) from exc


@router.get("/templates")
def list_templates(
    user: Reader, svc: Svc, topic: str | None = None, language: str | None = None
) -> list[ReplyTemplate]:
    return svc.assistant.templates(topic, language)


@router.put("/templates/{template_id}")
def save_template(template_id: DocId, body: TemplateIn, user: Operator, svc: Svc) -> ReplyTemplate:
    template = _valid(ReplyTemplate, id=template_id, **body.model_dump())
    return svc.assistant.save_template(template, user.name)


@router.delete("/templates/{template_id}", status_code=204)
def delete_template(template_id: DocId, user: Operator, svc: Svc) -> None:
    if not svc.assistant.delete_template(template_id, user.name):
        raise HTTPException(404, f"no reply template {template_id!r}")


@router.get("/knowledge")
def list_knowledge(user: Reader, svc: Svc, language: str | None = None) -> list[KnowledgeArticle]:
    return svc.assistant.articles(language)


@router.put("/knowledge/{article_id}")
def save_article(article_id: DocId, body: ArticleIn, user: Operator, svc: Svc) -> KnowledgeArticle:
    article = _valid(KnowledgeArticle, id=article_id, **body.model_dump())
    return svc.assistant.save_article(article, user.name)


@router.delete("/knowledge/{article_id}", status_code=204)
def delete_article(article_id: DocId, user: Operator, svc: Svc) -> None:
    if not svc.assistant.delete_article(article_id, user.name):
        raise HTTPException(404, f"no knowledge article {article_id!r}")


@router.get("/automation")
def automation(user: Operator, svc: Svc) -> AutomationView:
    auto = svc.automation
    return AutomationView(
        settings=auto.settings(), rules=auto.rules(), sent_today=auto.sent_today()
    )


@router.put("/automation/settings")
def automation_settings(body: SettingsIn, user: Operator, svc: Svc) -> AutomationSettings:
    """The off switch (``enabled``) and the daily cap."""
    settings = _valid(AutomationSettings, **body.model_dump())
    return svc.automation.save_settings(settings, user.name)


@router.put("/automation/rules/{topic}/{language}")
def save_rule(topic: str, language: str, body: RuleIn, user: Operator, svc: Svc) -> AutomationRule:
    rule = _valid(AutomationRule, topic=topic, language=language, **body.model_dump())
    try:
        return svc.automation.save_rule(rule, user.name)
    except QueueError as exc:
        raise _queue_error(exc) from exc


@router.delete("/automation/rules/{topic}/{language}", status_code=204)
def delete_rule(topic: str, language: str, user: Operator, svc: Svc) -> None:
    if not svc.automation.delete_rule(topic, language, user.name):
        raise HTTPException(404, f"no automation rule for {topic}/{language}")


@router.post("/automation/run")
def run_automation(
    user: Operator, svc: Svc, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
) -> list[DecisionOut]:
    """Answer the open items that automation may answer now; the rest stay for agents."""
    return [DecisionOut(**vars(d)) for d in svc.automation.run(limit)]


@router.get("/automation/reopened")
def reopened(
    user: Operator,
    svc: Svc,
    since: Annotated[datetime | None, Query(description="default: 7 days ago")] = None,
) -> list[ReopenedReply]:
    """Automated replies that a human later reopened."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return svc.automation.reopened_report(since or utcnow() - timedelta(days=7))

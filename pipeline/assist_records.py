"""Typed records of agent assist: what operators keep (reply templates, knowledge articles,
automation rules) and what the assist layer hands agents (similar cases, suggested replies).

Operator-kept records are the store's generic records (``Store.put_record``), one kind each;
outbound replies have their own collection because the daily cap and the reopened report query
them by time.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from pipeline.records import AwareDatetime, Record

PLACEHOLDER = re.compile(r"\{(\w+)\}")
FILLABLE = ("order_number", "product", "handle")
# Who automated replies are recorded as (resolver, audit actor): the KPIs count them by it.
AUTOMATION_AGENT = "automation"
Outcome = Literal["resolved_first_reply", "escalated", "reopened"]
Tone = Literal["angry", "unhappy", "pleased"]


def _known_placeholders(body: str) -> str:
    unknown = sorted(set(PLACEHOLDER.findall(body)) - set(FILLABLE))
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {', '.join(unknown)}; use {', '.join(FILLABLE)}"
        )
    return body


class ReplyTemplate(Record):
    """A reply operators wrote for one topic and language; ``{order_number}``, ``{product}``
    and ``{handle}`` are filled from the post."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    topic: str = Field(min_length=1, max_length=64)
    language: str = Field(min_length=1, max_length=16)
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=2000)
    updated_by: str = "operator"
    updated_at: AwareDatetime | None = None

    _check = field_validator("body")(_known_placeholders)


class KnowledgeArticle(Record):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=5000)
    language: str = Field(min_length=1, max_length=16)
    topics: list[str] = Field(default_factory=list)
    updated_by: str = "operator"
    updated_at: AwareDatetime | None = None


class AutomationRule(Record):
    """Answer posts of ``topic`` in ``language`` with ``template_id`` without an agent, when the
    topic model is at least ``threshold`` sure and the post is at most ``max_negative`` negative."""

    topic: str = Field(min_length=1, max_length=64)
    language: str = Field(min_length=1, max_length=16)
    template_id: str = Field(min_length=1, max_length=64)
    threshold: float = Field(ge=0.5, le=1.0)
    max_negative: float = Field(default=0.3, ge=0.0, le=1.0)
    enabled: bool = True
    updated_by: str = "operator"
    updated_at: AwareDatetime | None = None

    @property
    def id(self) -> str:
        return f"{self.topic}.{self.language}"


class AutomationSettings(Record):
    """The off switch and the daily cap, for all rules at once."""

    enabled: bool = False
    daily_cap: int = Field(default=200, ge=0, le=100_000)
    updated_by: str = "operator"
    updated_at: AwareDatetime | None = None


class OutboundReply(Record):
    """A reply sent (or handed to a connector) for a queue item, by an agent or by automation."""

    id: str
    item_id: str
    source: str
    text: str
    by: str
    automated: bool
    at: AwareDatetime
    template_id: str | None = None
    external_id: str | None = Field(default=None, description="the reply's id on the network")


class SimilarCase(Record):
    item_id: str
    score: float
    text: str
    topic: str
    language: str
    reply: str
    resolved_by: str
    outcome: Outcome


class SuggestedReply(Record):
    template_id: str
    title: str
    text: str
    missing: list[str] = Field(description="placeholders the post did not fill: edit them")
    resolved_similar: int = Field(description="similar cases this template's reply resolved")


class Assistance(Record):
    """What the agent sees next to an item."""

    item_id: str
    tone: Tone | None
    tone_cue: str | None
    similar: list[SimilarCase]
    replies: list[SuggestedReply]
    knowledge: list[KnowledgeArticle]

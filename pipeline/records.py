"""Typed, versioned records that cross every boundary: connector -> bus -> worker -> store.

Records are validated once, where they enter; everything downstream trusts the types.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

MAX_TEXT_CHARS = 20_000
URGENCY_LEVELS = ("low", "medium", "high", "critical")
# What each level is worth in the priority score (``pipeline.priority``).
URGENCY_VALUE = dict(zip(URGENCY_LEVELS, (0.0, 0.35, 0.7, 1.0), strict=True))


def _aware(value: datetime) -> datetime:
    """Naive time stamps are read as UTC, so every stored time compares with every other."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Author(Record):
    id: str = Field(min_length=1, max_length=128)
    handle: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=256)
    followers: int = Field(default=0, ge=0)
    verified: bool = False


class Post(Record):
    """One thing somebody said about the brand, as a connector heard it."""

    schema_version: Literal[1] = 1
    source: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    native_id: str = Field(min_length=1, max_length=128, pattern=r"^[^\s:]+$")
    author: Author
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    language: str | None = Field(default=None, max_length=16)
    created_at: AwareDatetime
    url: str | None = Field(default=None, max_length=2048)
    in_reply_to: str | None = Field(default=None, max_length=128)
    conversation_id: str | None = Field(default=None, max_length=128)
    raw: dict[str, Any] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        """Stable across connectors, restarts and replays: ``<source>:<native id>``."""
        return f"{self.source}:{self.native_id}"


def validation_reason(exc: ValidationError) -> str:
    """The first few problems of a record that failed validation, in one line for a dead letter."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    return "invalid post: " + "; ".join(parts)


class Prediction(Record):
    label: str
    confidence: float = Field(ge=0.0, le=1.0)
    probabilities: dict[str, float] = Field(default_factory=dict)
    evidence: list[str] = Field(default_factory=list)


class Entity(Record):
    kind: Literal[
        "order_number",
        "parcel_number",
        "ticket_number",
        "phone",
        "email",
        "card",
        "url",
        "mention",
        "hashtag",
        "product",
    ]
    text: str
    start: int
    end: int


class Priority(Record):
    score: float = Field(ge=0.0, le=100.0)
    band: Literal["P1", "P2", "P3", "P4"]
    reasons: list[str]


class TriagedPost(Record):
    """A post with everything the worker decided about it, and why."""

    schema_version: Literal[1] = 1
    post: Post
    language: str
    spam: Prediction
    is_spam: bool
    topic: Prediction
    urgency: Prediction
    sentiment: Prediction
    emotion: Prediction | None = None  # None from bundles trained before the emotion head
    entities: list[Entity]
    redacted_text: str
    priority: Priority
    model_versions: dict[str, str]
    timings_ms: dict[str, float]
    triaged_at: AwareDatetime

    @property
    def id(self) -> str:
        return self.post.id


class Resolution(Record):
    reply: str = Field(min_length=1, max_length=10_000)
    by: str
    at: AwareDatetime


class QueueItem(Record):
    """What an agent claims: one non-spam post, ordered by its priority."""

    id: str
    priority: float
    band: Literal["P1", "P2", "P3", "P4"]
    reasons: list[str]
    topic: str
    urgency: str
    sentiment: str
    emotion: str | None = None
    language: str
    source: str
    author_id: str
    text: str
    model_versions: dict[str, str]
    status: Literal["open", "claimed", "snoozed", "resolved"] = "open"
    agent: str | None = None
    lease_until: AwareDatetime | None = None
    snooze_until: AwareDatetime | None = None
    resolution: Resolution | None = None
    version: int = Field(default=0, ge=0, description="bumped by every change of state")
    post_created_at: AwareDatetime
    enqueued_at: AwareDatetime
    factors: dict[str, float] = Field(
        default_factory=dict, description="the triage inputs the priority is re-scored from"
    )
    sla_band: Literal["P1", "P2", "P3", "P4"] | None = Field(
        default=None, description="the band whose SLA targets run; re-scoring does not move them"
    )
    first_response_at: AwareDatetime | None = None
    sla_warnings: list[str] = Field(default_factory=list)
    sla_breaches: list[str] = Field(default_factory=list)

    @classmethod
    def from_triaged(cls, item: TriagedPost) -> QueueItem:
        return cls(
            id=item.id,
            priority=item.priority.score,
            band=item.priority.band,
            reasons=item.priority.reasons,
            topic=item.topic.label,
            urgency=item.urgency.label,
            sentiment=item.sentiment.label,
            emotion=item.emotion.label if item.emotion is not None else None,
            language=item.language,
            source=item.post.source,
            author_id=f"{item.post.source}:{item.post.author.id}",
            text=item.redacted_text,
            model_versions=item.model_versions,
            post_created_at=item.post.created_at,
            enqueued_at=item.triaged_at,
            factors=priority_factors(item),
            sla_band=item.priority.band,
        )


def priority_factors(item: TriagedPost) -> dict[str, float]:
    """What re-scoring needs from triage, so the SLA watchdog need not re-read every post."""
    probs = item.urgency.probabilities or {item.urgency.label: 1.0}
    return {
        "urgency": sum(URGENCY_VALUE.get(level, 0.0) * p for level, p in probs.items()),
        "negative": item.sentiment.probabilities.get("negative", 0.0),
        "followers": float(item.post.author.followers),
        "verified": float(item.post.author.verified),
    }


class DeadLetter(Record):
    """A record the pipeline could not take, kept with its original bytes and the reason."""

    reason: str
    stage: str
    original: str = Field(description="the original bytes, base64-encoded")
    topic: str
    partition: int | None = None
    offset: int | None = None
    failed_at: AwareDatetime
    post_id: str | None = Field(
        default=None, description="the post id, when the bad record still names one"
    )


class AuditEntry(Record):
    at: AwareDatetime
    actor: str
    action: str
    item_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Correction(Record):
    """An agent's relabel of one task of one queued post: training data for the next model.

    It keeps the text and the labels the model gave at the time, so that training needs no
    join, and a later correction of another task of the same post adds to this one."""

    item_id: str = Field(min_length=1)
    task: Literal["spam", "topic", "urgency", "sentiment", "emotion"]
    label: str = Field(min_length=1, max_length=64)
    agent: str = Field(min_length=1, max_length=128)
    at: AwareDatetime
    text: str
    language: str
    predicted: dict[str, str] = Field(default_factory=dict)


Role = Literal["agent", "marketing", "operator", "supervisor", "admin"]
ROLES: tuple[str, ...] = ("agent", "marketing", "operator", "supervisor", "admin")


class UserAccount(Record):
    """Somebody who may sign in to the dashboards; only the password's hash is ever stored."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    password_hash: str = Field(min_length=20)
    roles: list[Role] = Field(min_length=1)
    created_at: AwareDatetime

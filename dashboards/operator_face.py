"""The operator face answers "is everything healthy?", and keeps the dead-letter queue.

Each flow (``flows/deployments.py``) shows its schedule, its last run and how it
ended (the run log the flows keep in the store, ``flows/run_log.py``), and its next run (the
cron schedule read by cronsim); a scheduled flow whose last run is older than two of its
intervals is overdue. Each connector the deployment has run is listed from the checkpoints it
saves in the store (``connectors/*.py``), with when it last saved and its state in words.
Throughput is posts arriving per five minutes over the last hour (from the store); lag is what
the worker group has not committed on ``posts.raw``, per partition (from the bus); dead letters
are read from ``posts.dlq`` and grouped by reason. Reprocessing puts a dead letter's original
bytes back on the topic it came from, offered only where that can help: bytes that do not parse
as a post today would only fail again, and are fixed at their source. The worker's writes are
idempotent by post id, so reprocessing twice stores it once.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from cronsim import CronSim
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from dashboards import charts
from dashboards.auth import User, get_store, require_roles
from dashboards.i18n import translate
from dashboards.marketing_face import bucket_size
from dashboards.pages import flash, language, render
from flows.deployments import PLAN, Planned
from flows.run_log import FLOW_RUNS
from pipeline.bus.interface import Bus
from pipeline.errors import TriageError
from pipeline.records import AuditEntry, DeadLetter, Post, utcnow
from pipeline.settings import Settings
from pipeline.store.interface import SavedCheckpoint, Store
from pipeline.store.models import shared_registry

router = APIRouter(include_in_schema=False)
Operator = Annotated[User, Depends(require_roles("operator"))]
StoreDep = Annotated[Store, Depends(get_store)]
REPROCESSED = "dlq_reprocessed"
SHOWN_DEAD_LETTERS = 100
MAX_LAG = 10_000  # the health flow's default threshold


@dataclass
class FlowState:
    """One flow as the operator sees it: when it runs, when it last ran and how, and what next."""

    name: str
    what: str
    schedule: str
    last_run: dict[str, Any] | None
    next_run: datetime | None
    state: str  # "ok", "failed", "overdue", "never ran" or "on demand"

    @property
    def healthy(self) -> bool:
        return self.state in ("ok", "on demand")


def next_fire(planned: Planned, after: datetime) -> datetime | None:
    """The soonest run of any of the flow's cron schedules after ``after`` (UTC)."""
    naive = after.astimezone(UTC).replace(tzinfo=None)
    fires = [next(CronSim(c.expression, naive)) for c in planned.schedules]
    return min(fires).replace(tzinfo=UTC) if fires else None


def interval(planned: Planned, at: datetime) -> timedelta | None:
    """The shortest gap between two runs of the flow's schedules around ``at``."""
    gaps = []
    naive = at.astimezone(UTC).replace(tzinfo=None)
    for c in planned.schedules:
        runs = CronSim(c.expression, naive)
        first = next(runs)
        gaps.append(next(runs) - first)
    return min(gaps) if gaps else None


def flow_states(store: Store, now: datetime) -> list[FlowState]:
    runs = {str(d["flow"]): d for d in store.find_records(FLOW_RUNS) if "flow" in d}
    states = []
    for planned in PLAN:
        last = runs.get(planned.name)
        gap = interval(planned, now)
        if last is not None and last.get("failed"):
            state = "failed"
        elif gap is None:
            state = "on demand"
        elif last is None:
            state = "never ran"
        elif as_time(last["ended_at"]) < now - 2 * gap:
            state = "overdue"
        else:
            state = "ok"
        states.append(
            FlowState(planned.name, planned.what, planned.schedule, last,
                      next_fire(planned, now), state)
        )
    return states


LIVE_WITHIN = timedelta(minutes=5)
NETWORKS = ("x", "reddit", "bluesky", "mastodon")
REDDIT_RESERVE = 10  # RedditBudget's default: requests kept back for replies
X_EPOCH_MS = 1288834974657  # X ids are snowflakes: milliseconds since this, shifted by 22 bits


@dataclass
class ConnectorState:
    """One connector's stream as its checkpoints tell it.

    ``state`` is "live", "behind" (``minutes`` behind the stream: Bluesky's cursor, or an X poll
    left unfinished), "quiet" (nothing new saved for ``minutes``: X, Reddit and Mastodon save only
    when something new arrived, so a silent source and a stopped connector look alike, and the
    operator reads it against the source's usual volume), "paused" (Reddit's shared allowance is
    spent ``until`` its reset) or "never ran" (the network has no checkpoint at all)."""

    network: str
    reads: str
    last_saved: datetime | None
    state: str
    minutes: int = 0
    newest: datetime | None = None
    until: datetime | None = None
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.state != "behind"


def minutes_since(then: datetime, now: datetime) -> int:
    return max(0, int((now - then).total_seconds() // 60))


def x_time(tweet_id: str) -> datetime | None:
    """When an X post was made, from its snowflake id; None for an id that is not one."""
    if not tweet_id.isdigit():
        return None
    return datetime.fromtimestamp(((int(tweet_id) >> 22) + X_EPOCH_MS) / 1000, UTC)


def saved_state(saved: SavedCheckpoint, now: datetime) -> tuple[str, int]:
    """Live while the connector saved progress lately, else quiet since it last did."""
    if saved.at is None or now - saved.at > LIVE_WITHIN:
        return "quiet", minutes_since(saved.at, now) if saved.at else 0
    return "live", 0


def x_states(saved: list[SavedCheckpoint], now: datetime) -> list[ConnectorState]:
    by_key = {c.key: c for c in saved}
    states = []
    for c in saved:
        if c.key.endswith(":resume"):
            continue
        state, minutes = saved_state(c, now)
        newest = x_time(c.value)
        resume = by_key.get(f"{c.key}:resume")
        if resume is not None and resume.value:  # a poll stopped between its pages
            state = "behind"
            minutes = minutes_since(newest, now) if newest else minutes
        states.append(ConnectorState("x", c.key.removeprefix("x:"), c.at, state, minutes, newest))
    return states


def reddit_states(saved: list[SavedCheckpoint], now: datetime) -> list[ConnectorState]:
    states, paused_until = [], None
    for c in saved:
        if not c.key.startswith("reddit:budget:"):
            continue
        try:
            budget = orjson.loads(c.value)
            remaining, used = float(budget["remaining"]), int(budget["used"])
            reset_at = datetime.fromtimestamp(float(budget["reset_at"]), UTC)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # not a budget this page understands: the connector rewrites it soon
        state = "live"
        if reset_at > now and remaining - REDDIT_RESERVE < 1:
            state, paused_until = "paused", reset_at
        states.append(ConnectorState(
            "reddit", c.key.removeprefix("reddit:"), c.at, state, until=reset_at,
            detail=f"{remaining:g} / {remaining + used:g}",
        ))
    for c in saved:
        if c.key.startswith("reddit:budget:"):
            continue
        state, minutes = saved_state(c, now)
        if paused_until is not None:
            state = "paused"
        states.append(ConnectorState("reddit", c.key.removeprefix("reddit:"), c.at, state,
                                     minutes, until=paused_until))
    return states


def bluesky_states(saved: list[SavedCheckpoint], now: datetime) -> list[ConnectorState]:
    states = []
    for c in saved:
        try:
            cursor = int(orjson.loads(c.value)["cursor"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        newest = datetime.fromtimestamp(cursor / 1_000_000, UTC)  # Jetstream's time_us
        lag = now - newest
        state = "live" if lag <= LIVE_WITHIN else "behind"
        states.append(ConnectorState("bluesky", c.key.removeprefix("bluesky:"), c.at, state,
                                     minutes_since(newest, now), newest))
    return states


def mastodon_states(saved: list[SavedCheckpoint], now: datetime) -> list[ConnectorState]:
    states = []
    for c in saved:
        state, minutes = saved_state(c, now)
        states.append(ConnectorState("mastodon", c.key.removeprefix("mastodon:"), c.at, state,
                                     minutes, detail=c.value))
    return states


READERS = {"x": x_states, "reddit": reddit_states, "bluesky": bluesky_states,
           "mastodon": mastodon_states}


def connector_states(store: Store, now: datetime) -> list[ConnectorState]:
    """Every stream each network's connector has saved progress for; a network without any is
    listed once as "never ran"."""
    states = []
    for network in NETWORKS:
        found = READERS[network](store.checkpoints_under(f"{network}:"), now)
        states += found or [ConnectorState(network, "", None, "never ran")]
    return states


@dataclass
class DeadGroup:
    """Dead letters that failed for one reason: fixable where the bytes parse as a post now."""

    reason: str
    stage: str
    letters: list[tuple[str, DeadLetter]] = field(default_factory=list)
    fixable: bool = False

    @property
    def newest(self) -> datetime:
        return max(d.failed_at for _, d in self.letters)


def reprocessable(dead: DeadLetter) -> bool:
    """Whether sending the bytes again could work: they parse as a post today, so what failed
    was downstream (a store outage, a stage's error) or a rule since relaxed."""
    try:
        Post.model_validate_json(base64.b64decode(dead.original))
    except (ValidationError, ValueError):
        return False
    return True


def group_dead_letters(dead: list[tuple[str, DeadLetter]]) -> list[DeadGroup]:
    """Grouped by stage and the reason's first clause: a validation reason lists up to three
    problems, and records that share the first usually share the cause."""
    groups: dict[tuple[str, str], DeadGroup] = {}
    for key, letter in dead:
        reason = letter.reason.split(";", 1)[0].strip()
        group = groups.setdefault((letter.stage, reason), DeadGroup(reason, letter.stage))
        group.letters.append((key, letter))
        group.fixable = group.fixable or reprocessable(letter)
    return sorted(groups.values(), key=lambda g: (-len(g.letters), g.reason))


def as_time(value: datetime | str) -> datetime:
    """Stores give times back as datetimes (MongoDB) or ISO text (embedded)."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def read_dead_letters(bus: Bus, settings: Settings) -> list[tuple[str, DeadLetter]]:
    found = []
    for message in bus.read_all(settings.topic_dlq):
        if message.value is None:
            continue  # a tombstone somebody sent: nothing to show
        try:
            dead = DeadLetter.model_validate_json(message.value)
        except ValidationError:
            continue  # not ours to show: the DLQ holds only DeadLetter records
        # Where the dead letter itself sits on the DLQ topic: unique and stable.
        found.append((f"{message.partition}:{message.offset}", dead))
    return found[-SHOWN_DEAD_LETTERS:][::-1]


def preview(dead: DeadLetter, width: int = 160) -> str:
    """What an operator needs to recognise the post: its id and text if it parses, else bytes."""
    raw = base64.b64decode(dead.original)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("text"), str):
        text = f"{doc.get('source')}:{doc.get('native_id')} {doc['text']}"
    else:
        text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= width else text[: width - 1] + "…"


@router.get("/operator")
def operator_page(request: Request, user: Operator, store: StoreDep) -> Response:
    settings: Settings = request.app.state.settings
    bus: Bus | None = request.app.state.bus
    lang = language(request)
    now = utcnow()
    since = now - timedelta(hours=1)
    size = bucket_size(timedelta(hours=1))
    starts = [since + size * i for i in range(int(timedelta(hours=1) / size))]
    counts = [0] * len(starts)
    for doc in store.posts_between(since, now):
        index = int((as_time(doc["created_at"]) - since) / size)
        counts[min(index, len(counts) - 1)] += 1
    context: dict[str, Any] = {
        "active": "operator",
        "posts": store.count("posts"),
        "queued": store.count("queue"),
        "depth": store.queue_depth(),
        "per_minute": sum(counts) / 60,
        "throughput_svg": charts.volume_chart(starts, counts, [], translate(lang, "throughput")),
        "lag": None,
        "dead": [],
        "groups": [],
        "fixable": set(),
        "reprocessed": {},
        "bus_error": None,
        "max_lag": MAX_LAG,
    }
    if bus is not None:
        try:
            context["lag"] = bus.lag(settings.consumer_group, settings.topic_raw)
            context["dead"] = read_dead_letters(bus, settings)
            context["groups"] = group_dead_letters(context["dead"])
            context["fixable"] = {k for k, d in context["dead"] if reprocessable(d)}
        except TriageError as exc:
            context["bus_error"] = str(exc)
        context["reprocessed"] = {
            d["key"]: d for d in store.find_records(REPROCESSED) if "key" in d
        }
    registry = shared_registry(settings, store)
    context["models"] = sorted(registry.versions("triage").items(), reverse=True)
    context["active_model"] = registry.active("triage")
    context["flow_runs"] = sorted(store.find_records(FLOW_RUNS), key=lambda d: str(d["flow"]))
    context["flows"] = flow_states(store, now)
    context["connectors"] = connector_states(store, now)
    problems = [f"{f.name}: {translate(lang, 'flow_state_' + f.state.replace(' ', '_'))}"
                for f in context["flows"] if not f.healthy]
    problems += [
        f"{c.network} {c.reads}: {translate(lang, 'connector_behind').format(n=c.minutes)}"
        for c in context["connectors"] if not c.healthy
    ]
    lagging = {p: n for p, n in (context["lag"] or {}).items() if n > MAX_LAG}
    problems += [f"{translate(lang, 'lag')} {p}: {n:,}" for p, n in sorted(lagging.items())]
    if context["bus_error"]:
        problems.append(context["bus_error"])
    context["problems"] = problems
    return render(
        request, "operator.html", user, preview=preview, as_time=as_time, **context
    )


@router.post("/operator/dlq/reprocess")
def reprocess(
    request: Request,
    user: Operator,
    store: StoreDep,
    key: Annotated[str, Form(pattern=r"^\d+:\d+$")],
) -> Response:
    settings: Settings = request.app.state.settings
    bus: Bus | None = request.app.state.bus
    if bus is None:
        flash(request, "no bus is connected to this dashboard", "error")
        return RedirectResponse("/operator", status_code=303)
    found = dict(read_dead_letters(bus, settings)).get(key)
    if found is None:
        flash(request, f"no dead letter {key} on {settings.topic_dlq}", "error")
        return RedirectResponse("/operator", status_code=303)
    if not reprocessable(found):
        flash(request, f"dead letter {key} does not parse as a post: fix it at its source", "error")
        return RedirectResponse("/operator", status_code=303)
    producer = bus.producer()
    try:
        producer.send(found.topic, base64.b64decode(found.original))
        producer.flush()
    finally:
        producer.close()
    at = utcnow()
    store.put_record(
        REPROCESSED,
        key,
        {"key": key, "by": user.name, "at": at.isoformat(), "topic": found.topic},
    )
    store.record_audit(
        [
            AuditEntry(
                at=at,
                actor=user.name,
                action="reprocess_dead_letter",
                detail={"dlq": key, "topic": found.topic, "reason": found.reason},
            )
        ]
    )
    flash(request, f"dead letter {key} sent back to {found.topic}")
    return RedirectResponse("/operator", status_code=303)

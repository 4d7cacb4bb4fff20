"""The operator face: pipeline health at a glance, and the dead-letter queue with reprocess.

Throughput is posts arriving per five minutes over the last hour (from the store); lag is what
the worker group has not committed on ``posts.raw``, per partition (from the bus); dead letters
are read from ``posts.dlq``. Reprocessing puts a dead letter's original bytes back on the topic it
came from: the worker's writes are idempotent by post id, so reprocessing twice stores it once.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from dashboards import charts
from dashboards.auth import User, get_store, require_roles
from dashboards.i18n import translate
from dashboards.marketing_face import bucket_size
from dashboards.pages import flash, language, render
from flows.run_log import FLOW_RUNS
from pipeline.bus.interface import Bus
from pipeline.errors import TriageError
from pipeline.records import AuditEntry, DeadLetter, utcnow
from pipeline.settings import Settings
from pipeline.store.interface import Store
from pipeline.store.models import shared_registry

router = APIRouter(include_in_schema=False)
Operator = Annotated[User, Depends(require_roles("operator"))]
StoreDep = Annotated[Store, Depends(get_store)]
REPROCESSED = "dlq_reprocessed"
SHOWN_DEAD_LETTERS = 100


def as_time(value: datetime | str) -> datetime:
    """Stores give times back as datetimes (MongoDB) or ISO text (embedded)."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def read_dead_letters(bus: Bus, settings: Settings) -> list[tuple[str, DeadLetter]]:
    found = []
    for message in bus.read_all(settings.topic_dlq):
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
        "reprocessed": {},
        "bus_error": None,
    }
    if bus is not None:
        try:
            context["lag"] = bus.lag(settings.consumer_group, settings.topic_raw)
            context["dead"] = read_dead_letters(bus, settings)
        except TriageError as exc:
            context["bus_error"] = str(exc)
        context["reprocessed"] = {
            d["key"]: d for d in store.find_records(REPROCESSED) if "key" in d
        }
    registry = shared_registry(settings, store)
    context["models"] = sorted(registry.versions("triage").items(), reverse=True)
    context["active_model"] = registry.active("triage")
    context["flow_runs"] = sorted(store.find_records(FLOW_RUNS), key=lambda d: str(d["flow"]))
    return render(request, "operator.html", user, preview=preview, **context)


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

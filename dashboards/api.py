"""The HTTP API under ``/api/v1`` (schema at ``/openapi.json``), served by ``triage serve``.

What is here so far is read-only and shows only redacted text: health for orchestrators, the
status operators watch, and the queue as agents see it. Claims, replies and escalations, behind
login and roles, are the agent queue's and dashboards' work.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pipeline.errors import TransientError
from pipeline.records import QueueItem
from pipeline.store import Store

BANDS = ("P1", "P2", "P3", "P4")


class Health(BaseModel):
    status: str
    store: str


class TopicCount(BaseModel):
    topic: str
    posts: int


class Status(BaseModel):
    posts: int
    queued: int
    open_by_band: dict[str, int]
    top_topics: list[TopicCount]


def create_app(store: Store) -> FastAPI:
    app = FastAPI(title="social-triage", version="0.1.0", docs_url="/api/v1/docs")

    @app.exception_handler(TransientError)
    def unavailable(request: Request, exc: TransientError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.get("/api/v1/health")
    def health() -> Health:
        store.count("posts")
        return Health(status="ok", store=type(store).__name__)

    @app.get("/api/v1/status")
    def status() -> Status:
        depth = store.queue_depth()
        return Status(
            posts=store.count("posts"),
            queued=store.count("queue"),
            open_by_band={band: depth.get(band, 0) for band in BANDS},
            top_topics=[TopicCount(topic=t, posts=n) for t, n in store.top_topics(10)],
        )

    @app.get("/api/v1/queue")
    def queue(
        limit: Annotated[int, Query(ge=1, le=500, description="how many items")] = 50,
        status: Annotated[
            str, Query(pattern="^(open|claimed|snoozed|resolved)$", description="item state")
        ] = "open",
    ) -> list[QueueItem]:
        return store.list_queue(status, limit)

    return app

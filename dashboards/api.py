"""The HTTP API under ``/api/v1`` (schema at ``/openapi.json``), served by ``triage serve``.

``create_app`` installs the signed session cookie and CSRF check (``dashboards/auth.py``) and
includes every router: health stays public, everything else needs a role. Routers take the store
with ``Depends(get_store)`` and the user with ``Depends(require_roles(...))``.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from connectors.replying import reply_senders
from dashboards import (
    agent_face,
    approval_face,
    auth,
    kpi_face,
    marketing_face,
    operator_face,
    pages,
    queue_api,
)
from dashboards.assist_api import router as assist_router
from dashboards.auth import LoginRequired, check_csrf, current_user, require_roles
from dashboards.incident_api import router as incident_router
from pipeline.bus.interface import Bus
from pipeline.errors import TransientError, TriageError
from pipeline.outbound.replies import NoReplier, Repliers
from pipeline.queue.agent_queue import QueueError
from pipeline.records import QueueItem
from pipeline.settings import Settings
from pipeline.store.interface import Store
from pipeline.trends.incidents import IncidentError

BANDS = ("P1", "P2", "P3", "P4")
PUBLIC_API = {"/api/v1/login", "/api/v1/logout", "/api/v1/health"}
REFUSAL = {
    "title": "Refusal",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
            ],
            "description": "what was wrong: one line, or FastAPI's list of invalid fields",
        }
    },
}


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


def document_refusals(app: FastAPI) -> dict[str, Any]:
    """The schema with the refusals every route may give and no route declares itself, so that
    clients (and the schemathesis fuzz in tests/test_api_fuzz.py) can rely on it: 401 signed out
    and 403 without the role on every route that needs a user, 403 without the CSRF token on
    every unsafe one (a sign-in sent as a form needs one too), 400 for a body that is not JSON,
    and each refusal's ``{"detail"}``."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    schema.setdefault("components", {}).setdefault("schemas", {})["Refusal"] = REFUSAL
    refusal = {"application/json": {"schema": {"$ref": "#/components/schemas/Refusal"}}}
    said = {
        "400": "the body is not valid JSON",
        "401": "not signed in: POST /api/v1/login",
        "403": "signed in without the role this needs, or no CSRF token (X-CSRF-Token)",
    }
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            unsafe = method.upper() in {"POST", "PUT", "PATCH", "DELETE"}
            wanted = {
                "400": "requestBody" in operation,
                "401": path not in PUBLIC_API,
                "403": path not in PUBLIC_API or unsafe,
            }
            for status, applies in wanted.items():
                if applies:
                    responses.setdefault(status, {"description": said[status]})
            for status, response in responses.items():
                if status.startswith("4"):
                    response["content"] = refusal
    app.openapi_schema = schema
    return schema


def app_from_environment() -> FastAPI:
    """The app of one of ``triage serve --workers N``'s processes, from the ``TRIAGE_*``
    settings: uvicorn imports this in each process, so each has its own store connection."""
    from pipeline.bus import open_bus
    from pipeline.store import open_store

    settings = Settings.from_environment()
    bus = open_bus(settings) if settings.kafka_bootstrap else None
    return create_app(open_store(settings), settings, bus)


def create_app(store: Store, settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    """The API and the dashboards over ``store``; ``bus`` (when given) feeds the operator face's
    lag and dead-letter views. Replies go out through the connectors the settings configure."""
    settings = settings or Settings()
    app = FastAPI(
        title="social-triage",
        version="0.1.0",
        docs_url="/api/v1/docs",
        dependencies=[Depends(check_csrf)],
    )
    app.openapi = lambda: document_refusals(app)  # type: ignore[method-assign]
    app.state.store = store
    app.state.settings = settings
    app.state.bus = bus
    app.state.repliers = Repliers.through(store, reply_senders(settings, store))
    secret = settings.session_secret
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret.get_secret_value() if secret else secrets.token_urlsafe(32),
        session_cookie="triage_session",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.session_https_only,
    )

    @app.exception_handler(TransientError)
    def unavailable(request: Request, exc: TransientError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.exception_handler(QueueError)
    @app.exception_handler(NoReplier)
    @app.exception_handler(IncidentError)
    def queue_refused(
        request: Request, exc: QueueError | NoReplier | IncidentError
    ) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": str(exc)})

    @app.exception_handler(TriageError)
    def not_carried_out(request: Request, exc: TriageError) -> JSONResponse:
        """What a provider or the settings refused (a reply to a deleted post, a revoked app
        password): its one line, not a 500. Transient and queue errors have their own."""
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(LoginRequired)
    def to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        """JSON for the API, a page for people."""
        if request.url.path.startswith("/api/"):
            return await http_exception_handler(request, exc)
        return pages.render(
            request,
            "error.html",
            current_user(request),
            exc.status_code,
            status=exc.status_code,
            detail=exc.detail,
        )

    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(agent_face.router)
    app.include_router(marketing_face.router)
    app.include_router(operator_face.router)
    app.include_router(queue_api.router)
    app.include_router(assist_router)
    app.include_router(incident_router)
    app.include_router(approval_face.api)
    app.include_router(approval_face.router)
    app.include_router(kpi_face.router)

    @app.get("/api/v1/health")
    def health() -> Health:
        store.count("posts")
        return Health(status="ok", store=type(store).__name__)

    @app.get("/api/v1/status", dependencies=[Depends(require_roles("operator", "agent"))])
    def status() -> Status:
        depth = store.queue_depth()
        return Status(
            posts=store.count("posts"),
            queued=store.count("queue"),
            open_by_band={band: depth.get(band, 0) for band in BANDS},
            top_topics=[TopicCount(topic=t, posts=n) for t, n in store.top_topics(10)],
        )

    @app.get("/api/v1/queue", dependencies=[Depends(require_roles("agent", "operator"))])
    def queue(
        limit: Annotated[int, Query(ge=1, le=500, description="how many items")] = 50,
        status: Annotated[
            str, Query(pattern="^(open|claimed|snoozed|resolved)$", description="item state")
        ] = "open",
    ) -> list[QueueItem]:
        return store.list_queue(status, limit)

    return app

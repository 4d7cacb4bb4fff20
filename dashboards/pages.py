"""Server-rendered pages: the login form, the language switch, and what every face shares.

Pages are Jinja2 templates under ``dashboards/templates``; each face's routes live in their own
module (``agent_face``, ``marketing_face``, ``operator_face``) and render through ``render``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from dashboards.auth import (
    User,
    authenticate_throttled,
    csrf_token,
    current_user,
    get_store,
    sign_in,
)
from dashboards.i18n import LANGUAGES, translate
from dashboards.reasons import reason_text
from pipeline.store.interface import Store

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["reason"] = reason_text
# Which face each role opens, in the order the navigation lists them.
FACES = {"agent": ("agent",), "marketing": ("marketing",), "operator": ("operator",)}


def language(request: Request) -> str:
    """The interface language: ``?lang=`` switches it for the session; English by default."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        request.session["lang"] = asked
    chosen = request.session.get("lang")
    return chosen if isinstance(chosen, str) and chosen in LANGUAGES else "en"


def faces_for(user: User | None) -> list[str]:
    if user is None:
        return []
    return [face for face, roles in FACES.items() if user.has_any(roles)]


def render(
    request: Request,
    template: str,
    user: User | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = language(request)
    flash = request.session.pop("flash", None)
    base = {
        "user": user,
        "lang": lang,
        "languages": LANGUAGES,
        "t": lambda key: translate(lang, key),
        "csrf": csrf_token(request),
        "faces": faces_for(user),
        "flash": flash[0] if flash else None,
        "flash_kind": flash[1] if flash else None,
    }
    return templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )


def fragment(request: Request, template: str, user: User, **context: Any) -> HTMLResponse:
    """A piece of a page that refreshes itself; leaves the one-time message for the page."""
    lang = language(request)
    base = {"user": user, "lang": lang, "t": lambda key: translate(lang, key)}
    return templates.TemplateResponse(request, template, {**base, **context})


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A one-time message shown on the next page (after a POST-redirect-GET)."""
    request.session["flash"] = [message, kind]


def safe_next(target: str) -> str:
    """Only same-site paths: ``next`` must never send a user to another site after login."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", current_user(request), next=safe_next(next))


@router.post("/login")
def login_form(
    request: Request,
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    store: Annotated[Store, Depends(get_store)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    account = authenticate_throttled(request, store, name, password)
    if account is None:
        return render(request, "login.html", None, status_code=401, error=True, next=next)
    sign_in(request, account)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout_form(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def home(request: Request) -> Response:
    """Each user lands on the first face their roles open."""
    user = current_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    faces = faces_for(user)
    if not faces:
        return render(request, "error.html", user, 403, status=403, detail=translate(
            language(request), "forbidden"))
    return RedirectResponse(f"/{faces[0]}", status_code=303)

"""Who may see what: users with argon2-hashed passwords, signed-cookie sessions, CSRF tokens, roles.

A session is a cookie signed with ``TRIAGE_SESSION_SECRET`` (Starlette's ``SessionMiddleware``,
itsdangerous underneath) holding the user's name and a CSRF token. Every request re-reads the user
from the store, so a changed role or a removed user takes effect at once. Unsafe requests
(POST, PUT, PATCH, DELETE) must echo the session's CSRF token in an ``X-CSRF-Token`` header or a
``csrf_token`` form field; the only exception is the JSON login, which a cross-site form cannot
send and which returns the token for API clients to use.

Routes guard themselves with ``Depends(require_roles("agent"))``, which returns the ``User``.
Anonymous callers of ``/api/...`` get a 401 JSON answer, anonymous visitors of pages a redirect to
``/login``; a signed-in user without one of the roles gets a 403. ``admin`` passes every check.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, Field

from pipeline.errors import ConfigError
from pipeline.records import ROLES, UserAccount, utcnow
from pipeline.store.interface import Store

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOGIN_PATH = "/api/v1/login"
MIN_PASSWORD = 8

hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


class User(BaseModel):
    """The signed-in user, as route handlers see them."""

    name: str
    roles: list[str]

    def has_any(self, roles: tuple[str, ...]) -> bool:
        return "admin" in self.roles or bool(set(roles) & set(self.roles))


class Credentials(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginResult(BaseModel):
    name: str
    roles: list[str]
    csrf_token: str = Field(description="send it back as X-CSRF-Token on unsafe requests")


class LoginRequired(Exception):
    """An anonymous visitor asked for a page: they are sent to the login page, then back."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path

    @property
    def location(self) -> str:
        return f"/login?next={quote(self.next_path, safe='/')}"


def get_store(request: Request) -> Store:
    """The store ``create_app`` was given: routers take it with ``Depends(get_store)``."""
    store: Store = request.app.state.store
    return store


def make_account(name: str, password: str, roles: list[str]) -> UserAccount:
    """A new user record; bad names, short passwords and unknown roles are ConfigErrors."""
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password must have at least {MIN_PASSWORD} characters")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise ConfigError(
            f"unknown role {unknown[0]!r}: choose from {', '.join(ROLES)}"
            if unknown
            else f"give at least one role: {', '.join(ROLES)}"
        )
    try:
        return UserAccount.model_validate(
            {
                "name": name,
                "password_hash": hasher.hash(password),
                "roles": sorted(set(roles)),
                "created_at": utcnow(),
            }
        )
    except ValueError as exc:
        raise ConfigError(
            f"user name {name!r} must be 1-64 letters, digits or . _ @ -"
        ) from exc


def authenticate(store: Store, name: str, password: str) -> UserAccount | None:
    """The user if the password is right; a hash made with weaker parameters is upgraded."""
    account = store.get_user(name)
    try:
        hasher.verify(account.password_hash if account else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if account is None:
        return None
    if hasher.check_needs_rehash(account.password_hash):
        account = account.model_copy(update={"password_hash": hasher.hash(password)})
        store.save_user(account)
    return account


class LoginThrottle:
    """Failed sign-ins counted per user name and per client address; past the limit every
    attempt gets 429 until the window moves on, before the password is checked, so guessing
    costs the guesser time. Successful sign-ins are not counted."""

    def __init__(self, limit: str = "10/minute") -> None:
        self.rate = parse(limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def keys(self, request: Request, name: str) -> tuple[str, str]:
        client = request.client.host if request.client else "unknown"
        return f"name:{name.strip().lower()}", f"addr:{client}"

    def check(self, request: Request, name: str) -> None:
        for key in self.keys(request, name):
            if not self.limiter.test(self.rate, key):
                reset = self.limiter.get_window_stats(self.rate, key).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                raise HTTPException(
                    429,
                    f"too many failed sign-ins; retry in {wait} s",
                    headers={"Retry-After": str(wait)},
                )

    def failed(self, request: Request, name: str) -> None:
        for key in self.keys(request, name):
            self.limiter.hit(self.rate, key)


def authenticate_throttled(
    request: Request, store: Store, name: str, password: str
) -> UserAccount | None:
    """``authenticate`` behind the app's ``LoginThrottle`` (one per app, made on first use)."""
    throttle = getattr(request.app.state, "login_throttle", None)
    if throttle is None:
        throttle = request.app.state.login_throttle = LoginThrottle()
    throttle.check(request, name)
    account = authenticate(store, name, password)
    if account is None:
        throttle.failed(request, name)
    return account


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """App-wide dependency: unsafe requests must carry the session's CSRF token."""
    if request.method not in UNSAFE_METHODS:
        return
    content_type = request.headers.get("content-type", "")
    if request.url.path == LOGIN_PATH and content_type.startswith("application/json"):
        return
    sent = request.headers.get("x-csrf-token")
    if sent is None and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get("csrf_token")
        sent = value if isinstance(value, str) else None
    expected = request.session.get("csrf")
    if not sent or not isinstance(expected, str) or not secrets.compare_digest(sent, expected):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def current_user(request: Request) -> User | None:
    name = request.session.get("user")
    if not isinstance(name, str):
        return None
    account = get_store(request).get_user(name)
    if account is None:
        return None
    return User(name=account.name, roles=list(account.roles))


def require_roles(*roles: str) -> Callable[..., User]:
    """A dependency that lets in users holding any of ``roles`` (or admin), and returns them."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def dependency(request: Request) -> User:
        user = current_user(request)
        if user is None:
            if request.url.path.startswith("/api/"):
                raise HTTPException(401, "sign in first: POST /api/v1/login")
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(path)
        if roles and not user.has_any(roles):
            raise HTTPException(
                403, f"{user.name} may not do this: it needs the role {' or '.join(roles)}"
            )
        return user

    return dependency


def sign_in(request: Request, account: UserAccount) -> str:
    """Start a fresh session for ``account``; returns its new CSRF token."""
    language = request.session.get("lang")
    request.session.clear()
    request.session["user"] = account.name
    if language:
        request.session["lang"] = language
    return csrf_token(request)


router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post(
    "/login",
    responses={
        401: {"description": "wrong name or password"},
        429: {"description": "too many failed sign-ins"},
    },
)
def login(
    request: Request,
    credentials: Annotated[Credentials, Body()],
    store: Annotated[Store, Depends(get_store)],
) -> LoginResult:
    """Sign in; the session cookie comes back, and the CSRF token for unsafe requests."""
    account = authenticate_throttled(request, store, credentials.name, credentials.password)
    if account is None:
        raise HTTPException(401, "wrong name or password")
    token = sign_in(request, account)
    return LoginResult(name=account.name, roles=list(account.roles), csrf_token=token)


@router.post("/logout")
def logout(request: Request) -> dict[str, Any]:
    request.session.clear()
    return {"detail": "signed out"}


@router.get("/me")
def me(user: Annotated[User, Depends(require_roles())]) -> User:
    """Who is signed in, with their roles."""
    return user

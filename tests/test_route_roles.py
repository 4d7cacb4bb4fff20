"""Every route of the app, as the app itself declares it, refuses the anonymous and every role it
does not name; a route added later is covered without touching this file. And no input to any
route makes the server fail (5xx)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboards.api import create_app
from dashboards.auth import make_account
from pipeline.records import ROLES
from pipeline.store.embedded import EmbeddedStore

PASSWORD = "correct horse battery"
# Routes anyone may call: signing in and out, the login page, the home page that sends each
# visitor to login or to their face, health for orchestrators, the schema and its docs, static
# files. Everything else must declare its roles.
PUBLIC = re.compile(
    r"^/(api/v1/(login|logout|health|docs.*)|login|logout|openapi\.json|docs.*|redoc.*|static.*)?$"
)
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def roles_named(call: Any) -> tuple[str, ...] | None:
    if call is not None and getattr(call, "__qualname__", "").startswith("require_roles."):
        return tuple(inspect.getclosurevars(call).nonlocals["roles"])
    return None


def role_checks(dependant: Dependant) -> list[tuple[str, ...]]:
    """The role sets of every ``require_roles(...)`` among a route's dependencies."""
    checks = []
    for sub in dependant.dependencies:
        named = roles_named(sub.call)
        checks.extend([named] if named is not None else role_checks(sub))
    return checks


def walk(
    items: list[Any], prefix: str = "", inherited: tuple[tuple[str, ...], ...] = ()
) -> Iterator[tuple[str, APIRoute, list[tuple[str, ...]]]]:
    """Every APIRoute with its full path and the role checks it and its routers declare.
    (FastAPI keeps included routers as branches that hold their own routes.)"""
    for item in items:
        if isinstance(item, APIRoute):
            yield prefix + item.path, item, [*inherited, *role_checks(item.dependant)]
        elif hasattr(item, "original_router") and hasattr(item, "include_context"):
            context = item.include_context
            from_router = tuple(
                named
                for depends in context.dependencies
                if (named := roles_named(depends.dependency)) is not None
            )
            yield from walk(
                item.original_router.routes, prefix + context.prefix, inherited + from_router
            )


@pytest.fixture(scope="module")
def app_and_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    store = EmbeddedStore(Path(tmp_path_factory.mktemp("roles")) / "s.sqlite3")
    store.ensure_schema()
    for role in ROLES:
        store.save_user(make_account(f"u-{role}", PASSWORD, [role]))
    yield create_app(store), store
    store.close()


@pytest.fixture(scope="module")
def admin(app_and_store: tuple[Any, Any]) -> tuple[TestClient, str]:
    return signed_in(app_and_store[0], "admin")


def routes(app: Any) -> list[tuple[str, str, APIRoute, list[tuple[str, ...]]]]:
    return [
        (method, path, route, checks)
        for path, route, checks in walk(app.routes)
        for method in sorted(route.methods - {"HEAD"})
    ]


def may(role: str, checks: list[tuple[str, ...]]) -> bool:
    return role == "admin" or all(not roles or role in roles for roles in checks)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x-1", path)


def call(client: TestClient, method: str, path: str, csrf: str | None = None) -> Any:
    headers = {"X-CSRF-Token": csrf} if csrf and method in UNSAFE else {}
    kwargs: dict[str, Any] = {"json": {}} if method in UNSAFE else {}
    return client.request(
        method, concrete(path), headers=headers, follow_redirects=False, **kwargs
    )


def signed_in(app: Any, role: str) -> tuple[TestClient, str]:
    client = TestClient(app, raise_server_exceptions=False)
    response = client.post("/api/v1/login", json={"name": f"u-{role}", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return client, response.json()["csrf_token"]


def test_every_schema_route_is_enumerated_and_guarded(app_and_store: tuple[Any, Any]) -> None:
    app, _ = app_and_store
    listed = {path for _, path, _, _ in routes(app)}
    schema_paths = set(TestClient(app).get("/openapi.json").json()["paths"])
    assert schema_paths <= listed
    unguarded = [
        f"{method} {path}"
        for method, path, _, checks in routes(app)
        if not checks and not PUBLIC.match(path)
    ]
    assert unguarded == [], "routes without require_roles(...)"


def test_anonymous_callers_are_refused_everywhere(app_and_store: tuple[Any, Any]) -> None:
    app, _ = app_and_store
    client = TestClient(app, raise_server_exceptions=False)
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/login"
    for method, path, _, checks in routes(app):
        if not checks:
            continue
        # a session-less client has no CSRF token: unsafe requests stop there (403) or at login
        response = call(client, method, path)
        if path.startswith("/api/"):
            assert response.status_code in (401, 403), (method, path, response.status_code)
        else:
            assert response.status_code in (303, 403), (method, path, response.status_code)
            if response.status_code == 303:
                assert response.headers["location"].startswith("/login")


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_exactly_the_routes_that_name_it(
    app_and_store: tuple[Any, Any], role: str
) -> None:
    app, _ = app_and_store
    client, csrf = signed_in(app, role)
    wrong = []
    for method, path, _, checks in routes(app):
        if not checks:
            continue
        allowed = may(role, checks)
        status = call(client, method, path, csrf).status_code
        assert status < 500, (role, method, path, status)
        if allowed == (status in (401, 403)):
            wrong.append(f"{method} {path}: {role} got {status}, allowed={allowed}")
    assert wrong == []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_input_makes_any_route_fail(
    app_and_store: tuple[Any, Any], admin: tuple[TestClient, str], data: st.DataObject
) -> None:
    app, _ = app_and_store
    client, csrf = admin
    method, path, route, _ = data.draw(st.sampled_from(routes(app)))
    if path == "/api/v1/logout":
        return  # it would end this client's session, which is all it does
    text = st.text(max_size=30)
    concrete_path = re.sub(
        r"\{[^}]+\}",
        lambda _: data.draw(st.from_regex(r"[A-Za-z0-9:_.~-]{1,20}", fullmatch=True)),
        path,
    )
    query = {
        p.alias: data.draw(text)
        for p in route.dependant.query_params
        if data.draw(st.booleans())
    }
    body = data.draw(
        st.none() | st.dictionaries(st.text(max_size=10), text | st.integers(), max_size=4)
    )
    headers = {"X-CSRF-Token": csrf} if method in UNSAFE else {}
    response = client.request(
        method, concrete_path, params=query, headers=headers, json=body, follow_redirects=False
    )
    assert response.status_code < 500, (method, concrete_path, query, body, response.text[:300])

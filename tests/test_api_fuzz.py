"""The API fuzzed from its own schema: schemathesis generates requests for every operation of
``/openapi.json`` and sends them as each role (and as nobody), to the real app over the embedded
store holding triaged posts, users and an incident.

Every response must be no 5xx, have a status the operation documents, and match its documented
schema and content type; a refusal is a clear 4xx (401 signed out, 403 wrong role or no CSRF
token, 404, 409, 422 naming the field, 429). Examples are capped so the whole run stays within a
few minutes on a shared 2-core machine.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from classifiers.triager import Triager
from dashboards.api import create_app
from dashboards.auth import make_account
from pipeline.settings import Settings
from pipeline.store.embedded import EmbeddedStore
from tests.helpers import make_post

PASSWORD = "correct horse battery"
ROLES = ("agent", "marketing", "operator", "admin")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Sign-in is fuzzed anonymously; signed in, a fuzzed logout would only end the session early.
SIGNED_IN_SKIPS = {("POST", "/api/v1/login"), ("POST", "/api/v1/logout")}


# The schema is read from the app once, at collection; the data goes in before the first call.
STORE = EmbeddedStore(":memory:")
APP = create_app(STORE, Settings(data_dir=Path(tempfile.mkdtemp(prefix="fuzz-data-"))))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def sessions(triager: Triager) -> dict[str, dict[str, str]]:
    """Triaged posts and one user per role in the store; the headers of each role's signed-in
    session (its cookie and its CSRF token)."""
    STORE.ensure_schema()
    now = datetime.now(UTC)
    posts = [make_post(i).model_copy(update={"created_at": now - timedelta(minutes=i)})
             for i in range(40)]
    STORE.write_batch(triager.triage(posts, now))
    found: dict[str, dict[str, str]] = {"anonymous": {}}
    for role in ROLES:
        STORE.save_user(make_account(f"u-{role}", PASSWORD, [role]))
        client = TestClient(APP)
        answer = client.post("/api/v1/login", json={"name": f"u-{role}", "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        found[role] = {"Cookie": cookie, "X-CSRF-Token": answer.json()["csrf_token"]}
    return found


@pytest.mark.slow
@pytest.mark.parametrize("role", ["anonymous", *ROLES])
@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_as_every_role(
    case: Any, role: str, sessions: dict[str, dict[str, str]]
) -> None:
    if role != "anonymous" and (case.method.upper(), case.path) in SIGNED_IN_SKIPS:
        return
    case.call_and_validate(headers=sessions[role], checks=CHECKS)

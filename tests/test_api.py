"""The HTTP API over a real embedded store and a real MongoDB-wire server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from classifiers.triager import Triager
from dashboards.api import create_app
from dashboards.auth import make_account
from pipeline.store.interface import Store
from pipeline.store.mongo import MongoStore
from tests.helpers import make_post

NOW = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture
def filled(store: Store, triager: Triager) -> Store:
    store.write_batch(triager.triage([make_post(i) for i in range(24)], NOW))
    store.save_user(make_account("ops", "operator password", ["operator"]))
    return store


def signed_in(store: Store) -> TestClient:
    client = TestClient(create_app(store))
    response = client.post("/api/v1/login", json={"name": "ops", "password": "operator password"})
    assert response.status_code == 200
    return client


def test_status_and_queue_are_served(filled: Store) -> None:
    assert TestClient(create_app(filled)).get("/api/v1/queue").status_code == 401
    client = signed_in(filled)
    assert client.get("/api/v1/health").json()["status"] == "ok"
    status = client.get("/api/v1/status").json()
    assert status["posts"] == 24 and status["queued"] == sum(status["open_by_band"].values())
    items = client.get("/api/v1/queue", params={"limit": 5}).json()
    assert len(items) == 5
    assert [i["priority"] for i in items] == sorted((i["priority"] for i in items), reverse=True)
    assert all(i["reasons"] and i["model_versions"] for i in items)
    assert "/api/v1/queue" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": "many"}, {"status": "lost"}])
def test_bad_queries_get_a_clear_422(filled: Store, params: dict[str, object]) -> None:
    response = signed_in(filled).get("/api/v1/queue", params=params)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"][-1] in params


def test_an_unreachable_store_is_a_503() -> None:
    client = TestClient(create_app(MongoStore("mongodb://127.0.0.1:9/", timeout_ms=300)))
    response = client.get("/api/v1/health")
    assert response.status_code == 503 and "unreachable" in response.json()["detail"]

"""The HTTP API over a real embedded store and a real MongoDB-wire server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifiers.triager import Triager
from dashboards.api import create_app
from pipeline.embedded_store import EmbeddedStore
from pipeline.mongo_store import MongoStore
from pipeline.store import Store
from tests.helpers import make_post

NOW = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture(params=["embedded", pytest.param("mongo", marks=pytest.mark.mongo)])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, unique: str, triager: Triager
) -> Iterator[Store]:
    s: Store
    if request.param == "embedded":
        s = EmbeddedStore(tmp_path / "api.sqlite3")
    else:
        s = MongoStore(request.getfixturevalue("mongo_uri"), f"api_{unique}")
    s.ensure_schema()
    s.write_batch(triager.triage([make_post(i) for i in range(24)], NOW))
    yield s
    if isinstance(s, MongoStore):
        s._client.drop_database(f"api_{unique}")
    s.close()


def test_status_and_queue_are_served(store: Store) -> None:
    client = TestClient(create_app(store))
    assert client.get("/api/v1/health").json()["status"] == "ok"
    status = client.get("/api/v1/status").json()
    assert status["posts"] == 24 and status["queued"] == sum(status["open_by_band"].values())
    items = client.get("/api/v1/queue", params={"limit": 5}).json()
    assert len(items) == 5
    assert [i["priority"] for i in items] == sorted((i["priority"] for i in items), reverse=True)
    assert all(i["reasons"] and i["model_versions"] for i in items)
    assert "/api/v1/queue" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": "many"}, {"status": "lost"}])
def test_bad_queries_get_a_clear_422(store: Store, params: dict[str, object]) -> None:
    response = TestClient(create_app(store)).get("/api/v1/queue", params=params)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"][-1] in params


def test_an_unreachable_store_is_a_503() -> None:
    client = TestClient(create_app(MongoStore("mongodb://127.0.0.1:9/", timeout_ms=300)))
    response = client.get("/api/v1/status")
    assert response.status_code == 503 and "unreachable" in response.json()["detail"]

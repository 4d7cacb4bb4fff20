"""Shared fixtures. Integration suites need the real services that `make test` starts; without
them they fail loudly, never skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from classifiers.products import DEMO_PRODUCTS, load_products
from classifiers.registry import PACKAGED, Registry
from classifiers.triager import Triager
from pipeline.store.embedded import EmbeddedStore
from pipeline.store.interface import Store
from pipeline.store.mongo import MongoStore
from tests.servers import inbox, provider, tls_files  # noqa: F401  (fixtures)
from tests.twilio_mock import twilio  # noqa: F401  (fixture)


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run the suite with `make test`, which starts the real services",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return required_env("TRIAGE_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="session")
def mongo_uri() -> str:
    return required_env("TRIAGE_MONGO_URI")


@pytest.fixture(scope="session")
def pds_url() -> str:
    """Bluesky's reference PDS (scripts/services), where the Bluesky reply tests write."""
    return required_env("TRIAGE_BLUESKY_PDS_URL")


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def triager() -> Triager:
    return Triager.from_registry(Registry(PACKAGED), load_products(DEMO_PRODUCTS))


@pytest.fixture(params=["embedded", pytest.param("mongo", marks=pytest.mark.mongo)])
def store(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[Store]:
    """An empty store of each kind: embedded SQLite, and a database on the real FerretDB."""
    s: Store
    if request.param == "embedded":
        s = EmbeddedStore(tmp_path / "store.sqlite3")
    else:
        s = MongoStore(request.getfixturevalue("mongo_uri"), f"test_{unique}")
    s.ensure_schema()
    yield s
    s.close()  # first: its background writes must not land in a database being dropped
    if isinstance(s, MongoStore):
        with MongoClient(request.getfixturevalue("mongo_uri")) as client:
            client.drop_database(f"test_{unique}")

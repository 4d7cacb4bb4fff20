"""Shared fixtures. Integration suites need the real services that `make test` starts; without
them they fail loudly, never skip."""

from __future__ import annotations

import os
import uuid

import pytest

from classifiers.registry import PACKAGED, Registry
from classifiers.triager import Triager


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


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def triager() -> Triager:
    return Triager.from_registry(Registry(PACKAGED))

"""Poison messages on the real Kafka: each goes to the dead-letter topic with its reason, and the
worker goes on with the posts around it."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime

import pytest

from classifiers.triager import Triager
from pipeline.records import DeadLetter, Post, TriagedPost
from pipeline.worker import Worker
from tests.helpers import post_bytes, wait_for
from tests.pipeline_runs import Deployment
from tests.test_faults_services import assert_each_post_once, stored

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.faults]

TEN_MB_TEXT = json.dumps(
    {**json.loads(post_bytes(10_001)), "text": "x" * (10 * 1024 * 1024)}
).encode()


class ExplodingTriager(Triager):
    """The real triager, with a stage that raises on one particular text."""

    def triage(self, posts: Sequence[Post], now: datetime) -> list[TriagedPost]:
        if any("EXPLODE" in p.text for p in posts):
            raise RuntimeError("stage bug")
        return super().triage(posts, now)


POISON = {
    "invalid JSON": (b'{"source": "test", "native_id": ', "invalid post: record: Invalid JSON"),
    "wrong schema": (b'{"source": 7, "text": []}', "invalid post: source"),
    "10 MB text": (TEN_MB_TEXT, "text: String should have at most 20000 characters"),
    "invalid UTF-8": (b'{"text": "\xff\xfe"}', "invalid post"),
    "stage raises": (post_bytes(10_002, text="please EXPLODE"), "stage raised RuntimeError"),
}


@pytest.fixture
def deployment(kafka_bootstrap: str, mongo_uri: str, unique: str) -> Iterator[Deployment]:
    d = Deployment(kafka_bootstrap, mongo_uri, unique, batch_size=100)
    yield d
    d.drop()


def test_poison_goes_to_the_dead_letter_topic_and_the_worker_goes_on(
    deployment: Deployment, triager: Triager, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in deployment.env.items():
        if key.startswith("TRIAGE_"):
            monkeypatch.setenv(key, value)
    from pipeline.settings import Settings

    settings = Settings.from_environment()
    store = deployment.store()
    store.ensure_schema()
    exploding = ExplodingTriager(triager.model, triager.version)
    worker = Worker(deployment.bus(), store, exploding, settings)
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    running.start()
    n = 300
    values = [post_bytes(i) for i in range(n)]
    # each poison record among good posts, in turn
    for k, (value, _) in enumerate(POISON.values()):
        values.insert(50 * (k + 1), value)
    deployment.produce(values)
    try:
        wait_for(lambda: stored(deployment) >= n, 240, f"{n} good posts stored")
        bus = deployment.bus()
        wait_for(
            lambda: len(bus.read_all(f"dlq.{deployment.name}", 30)) >= len(POISON),
            60,
            "the dead letters",
        )
        assert running.is_alive(), "the worker stopped"
    finally:
        stop.set()
        running.join(60)
        worker.close()
        store.close()
    letters = [
        DeadLetter.model_validate_json(m.value)
        for m in deployment.bus().read_all(f"dlq.{deployment.name}", 30)
    ]
    assert len(letters) == len(POISON)
    by_original = {base64.b64decode(d.original): d for d in letters}
    for what, (value, reason) in POISON.items():
        assert value in by_original, f"{what}: no dead letter with its original bytes"
        assert reason in by_original[value].reason, (what, by_original[value].reason)
        assert by_original[value].topic == f"raw.{deployment.name}"
    assert_each_post_once(deployment, n)

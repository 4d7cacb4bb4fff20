"""The webhook connector: signed posts are accepted onto the bus; everything else is refused."""

from __future__ import annotations

import time

import orjson
import pytest
from fastapi.testclient import TestClient

from connectors.webhook import WebhookConnector, sign
from pipeline.bus.kafka import KafkaBus
from pipeline.bus.memory import InProcessBus
from pipeline.records import DeadLetter, Post
from tests.helpers import make_post

SECRET = "s3cret-s3cret-s3cret"


def signed(body: bytes, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = str(int(at if at is not None else time.time()))
    return {
        "X-Triage-Timestamp": stamp,
        "X-Triage-Signature": sign(secret, stamp, body),
        "Content-Type": "application/json",
    }


def batch(n: int) -> bytes:
    return (
        b"["
        + b",".join(make_post(i, source="partner").model_dump_json().encode() for i in range(n))
        + b"]"
    )


@pytest.mark.kafka
def test_signed_posts_land_on_kafka(kafka_bootstrap: str, unique: str) -> None:
    bus = KafkaBus(kafka_bootstrap)
    topic = f"raw.webhook.{unique}"
    bus.ensure_topics([topic])
    hook = WebhookConnector(bus.producer(), SECRET, topic=topic)
    body = batch(25)
    response = TestClient(hook.app()).post("/webhook/posts", content=body, headers=signed(body))
    assert response.status_code == 202 and response.json() == {"accepted": 25}
    posts = [Post.model_validate_json(m.value) for m in bus.read_all(topic)]
    assert sorted(p.id for p in posts) == sorted(f"partner:{i}" for i in range(25))


def test_a_single_post_is_accepted_too() -> None:
    bus = InProcessBus()
    hook = WebhookConnector(bus.producer(), SECRET)
    body = make_post(7).model_dump_json().encode()
    response = TestClient(hook.app()).post("/webhook/posts", content=body, headers=signed(body))
    assert response.json() == {"accepted": 1} and len(bus.read_all("posts.raw")) == 1


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing X-Triage-Timestamp"),
        ({"secret": "another-secret-entirely"}, "bad signature"),
        ({"at": time.time() - 3600}, "outside the 5-minute window"),
        ({"at": time.time() + 3600}, "outside the 5-minute window"),
    ],
)
def test_unsigned_wrongly_signed_and_replayed_requests_get_401(
    headers: dict[str, object], detail: str
) -> None:
    bus = InProcessBus()
    body = batch(2)
    sent = (
        {} if not headers else signed(body, str(headers.get("secret", SECRET)), headers.get("at"))
    )  # type: ignore[arg-type]
    response = TestClient(WebhookConnector(bus.producer(), SECRET).app()).post(
        "/webhook/posts", content=body, headers=sent
    )
    assert response.status_code == 401 and detail in response.json()["detail"]
    assert bus.read_all("posts.raw") == [] and bus.read_all("posts.dlq") == []


def test_signed_but_invalid_bodies_get_422_and_a_dead_letter() -> None:
    bus = InProcessBus()
    client = TestClient(WebhookConnector(bus.producer(), SECRET).app())
    bad = orjson.dumps([{"source": "partner", "native_id": "1", "text": "hi"}])
    response = client.post("/webhook/posts", content=bad, headers=signed(bad))
    assert response.status_code == 422 and "author" in response.json()["detail"]
    garbage = b"{not json"
    assert (
        client.post("/webhook/posts", content=garbage, headers=signed(garbage)).status_code == 422
    )
    letters = [DeadLetter.model_validate_json(m.value) for m in bus.read_all("posts.dlq")]
    assert len(letters) == 2 and bus.read_all("posts.raw") == []


def test_oversized_bodies_get_413() -> None:
    bus = InProcessBus()
    body = b"[" + b" " * (1024 * 1024 + 1) + b"]"
    response = TestClient(WebhookConnector(bus.producer(), SECRET).app()).post(
        "/webhook/posts", content=body, headers=signed(body)
    )
    assert response.status_code == 413


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        WebhookConnector(InProcessBus().producer(), "short")


def test_the_served_endpoint_stops_cleanly() -> None:
    import socket
    import threading

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bus = InProcessBus()
    hook = WebhookConnector(bus.producer(), SECRET, port=port)
    serving = threading.Thread(target=hook.start)
    serving.start()
    body = batch(3)
    deadline = time.monotonic() + 20
    while True:
        try:
            response = httpx.post(
                f"http://127.0.0.1:{port}/webhook/posts", content=body, headers=signed(body)
            )
            break
        except httpx.ConnectError:
            assert time.monotonic() < deadline, "the webhook never started listening"
            time.sleep(0.1)
    assert response.status_code == 202
    hook.stop()
    serving.join(timeout=10)
    assert not serving.is_alive() and len(bus.read_all("posts.raw")) == 3

"""Builders for test records and settings that never read the developer's environment."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.bus.interface import Consumer, Message
from pipeline.records import Author, Post
from pipeline.settings import Settings

TEXTS = (
    "My order #4839201 is 6 days late and tracking hasn't moved",
    "My AcmePhone X caught FIRE while charging. Smoke everywhere",
    "You charged my card TWICE for order 99812, fix this",
    "Love my new Acme Buds! Best purchase this year",
    "FREE iPhone giveaway, just click bit.ly/x8s7 and enter your card",
    "订单12345678已经晚了6天，物流一直没更新",
    "我的账号被盗了，有人改了邮箱正在下单",
    "How do I change the email on my account?",
)


def embedded_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"kafka_bootstrap": None, "mongo_uri": None, "batch_wait_ms": 20}
    values.update(overrides)
    return Settings(**values)


def make_post(i: int, text: str | None = None, source: str = "test", **extra: Any) -> Post:
    return Post(
        source=source,
        native_id=str(i),
        author=Author(id=f"a{i % 97}", handle=f"user{i % 97}", followers=(i * 37) % 50_000),
        text=text or TEXTS[i % len(TEXTS)],
        created_at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=i),
        **extra,
    )


def post_bytes(i: int, **kw: Any) -> bytes:
    return make_post(i, **kw).model_dump_json().encode()


def poll_until(
    consumer: Consumer,
    want: int,
    timeout_s: float = 30.0,
    done: Callable[[list[Message]], bool] | None = None,
) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got.extend(consumer.poll(want - len(got), timeout_s=0.5))
        if done is not None and done(got):
            break
    return got


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")

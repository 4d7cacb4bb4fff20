"""The X connector against real recorded X API v2 traffic, played back to the real tweepy client."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import tweepy
from requests.adapters import HTTPAdapter

from connectors.x import XConnector
from pipeline.bus.kafka import KafkaBus
from pipeline.bus.memory import InProcessBus
from pipeline.records import DeadLetter, Post
from pipeline.store.embedded import EmbeddedStore
from tests import cassettes

SEARCH = "test_client_search_recent_tweets.yaml"
NEWEST = "1578516068309794817"


def client() -> tweepy.Client:
    return tweepy.Client(
        bearer_token="test-bearer",
        consumer_key="k",
        consumer_secret="s",
        access_token="t",
        access_token_secret="ts",
    )


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    s = EmbeddedStore(tmp_path / "x.sqlite3")
    s.ensure_schema()
    return s


@pytest.fixture
def one_page(tmp_path: Path) -> str:
    """The recorded search, answered as a poll's only page."""
    recorded = cassettes.load(SEARCH)["interactions"][0]
    return str(cassettes.write(tmp_path / "one_page.yaml", [cassettes.last_page(recorded)]))


def connector(bus: InProcessBus | KafkaBus, store: EmbeddedStore, **kw: object) -> XConnector:
    c = XConnector(bus.producer(), client(), "Tweepy", store, max_pages=1, **kw)  # type: ignore[arg-type]
    c.setup()
    return c


@pytest.mark.kafka
def test_recorded_search_becomes_posts_on_kafka(
    kafka_bootstrap: str, store: EmbeddedStore, unique: str, one_page: str
) -> None:
    bus = KafkaBus(kafka_bootstrap)
    topic = f"raw.x.{unique}"
    bus.ensure_topics([topic])
    x = connector(bus, store, topic=topic)
    with cassettes.player.use_cassette(one_page):
        assert x.poll_once() == 10
    posts = [Post.model_validate_json(m.value) for m in bus.read_all(topic)]
    assert len(posts) == 10 and all(p.source == "x" for p in posts)
    newest = next(p for p in posts if p.native_id == NEWEST)
    # the recorded texts carry the time they were posted; the id's snowflake must agree
    written = datetime.fromisoformat(newest.text.split(" tweepy")[0]).replace(tzinfo=UTC)
    assert abs((newest.created_at - written).total_seconds()) < 2
    assert newest.url == f"https://x.com/i/status/{NEWEST}"
    assert store.get_checkpoint("x:search:Tweepy") == NEWEST


def test_restart_asks_only_for_what_is_newer(store: EmbeddedStore, one_page: str) -> None:
    bus = InProcessBus()
    with cassettes.player.use_cassette(one_page):
        connector(bus, store).poll_once()
    again = connector(bus, store)
    assert again.since_id == NEWEST
    asked: list[str] = []
    again.client.session.hooks["response"].append(lambda r, *a, **k: asked.append(r.request.url))
    with cassettes.player.use_cassette(one_page):
        again.poll_once()
    assert f"since_id={NEWEST}" in asked[0] and "expansions=author_id" in asked[0]


def stop_after_posts(x: XConnector) -> None:
    """Run until the first posts arrive, as an operator's Ctrl-C would end it."""
    emit = x.emit

    def emit_then_stop(post: Post) -> None:
        emit(post)
        x.stop()

    x.emit = emit_then_stop  # type: ignore[method-assign]
    x.start()


def test_rate_limit_waits_until_the_reset(store: EmbeddedStore, tmp_path: Path) -> None:
    recorded = cassettes.load(SEARCH)["interactions"][0]
    reset = int(time.time()) + 1
    limited = cassettes.with_status(
        recorded, 429, {"title": "Too Many Requests"}, {"x-rate-limit-reset": str(reset)}
    )
    path = cassettes.write(tmp_path / "limited.yaml", [limited, recorded])
    bus = InProcessBus()
    x = connector(bus, store, clock=lambda: reset - 1)
    with cassettes.player.use_cassette(str(path)):
        stop_after_posts(x)
    assert x.waits[0] == 2  # reset - now + 1 s, as the reset header says
    assert x.sent >= 1


class DroppingAdapter(HTTPAdapter):
    """Drops the first connection, as a flaky network does; then lets requests through."""

    def __init__(self, drops: int) -> None:
        super().__init__()
        self.drops = drops

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        if self.drops:
            self.drops -= 1
            raise requests.ConnectionError("connection reset by peer")
        return super().send(request, **kwargs)


def test_dropped_connections_and_server_errors_back_off(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    recorded = cassettes.load(SEARCH)["interactions"][0]
    failing = cassettes.with_status(recorded, 503, {"title": "Service Unavailable"})
    path = cassettes.write(tmp_path / "flaky.yaml", [failing, recorded])
    x = connector(InProcessBus(), store)
    x.client.session.mount("https://", DroppingAdapter(drops=1))
    with cassettes.player.use_cassette(str(path)):
        stop_after_posts(x)
    assert list(x.waits)[:2] == [1.0, 2.0]  # exponential backoff, then success
    assert x.sent >= 1


def test_malformed_tweets_go_to_the_dead_letter_topic(store: EmbeddedStore, tmp_path: Path) -> None:
    recorded = cassettes.load(SEARCH)["interactions"][0]
    body = cassettes.body_json(recorded)
    del body["data"][0]["text"]
    body["data"][1]["id"] = "not-a-number:1"
    path = cassettes.write(tmp_path / "bad.yaml", [cassettes.with_status(recorded, 200, body)])
    bus = InProcessBus()
    x = connector(bus, store)
    with cassettes.player.use_cassette(str(path)):
        x.poll_once()
    letters = [DeadLetter.model_validate_json(m.value) for m in bus.read_all("posts.dlq")]
    assert len(letters) == 2 and x.sent == 8
    assert {d.stage for d in letters} == {"connector:x"}
    assert any("text" in d.reason for d in letters)


def test_agents_reply_and_message_on_x(store: EmbeddedStore) -> None:
    x = connector(InProcessBus(), store)
    with cassettes.player.use_cassette(
        str(cassettes.X_CASSETTES / "test_client_create_and_delete_tweet.yaml")
    ):
        assert x.reply("1456012973835788200", "Test Tweet") == "1456012973835788293"
    with cassettes.player.use_cassette(
        str(cassettes.X_CASSETTES / "test_manage_and_lookup_direct_messages.yaml")
    ):
        assert x.direct_message("750362064426721281", "Testing 1") == "1585800613253812228"


def test_mentions_are_polled_from_their_own_checkpoint(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    recorded = cassettes.last_page(cassettes.load(SEARCH)["interactions"][0])
    mentions = dict(
        recorded,
        request=dict(recorded["request"], uri="https://api.twitter.com/2/users/42/mentions"),
    )
    path = cassettes.write(tmp_path / "mentions.yaml", [mentions])
    bus = InProcessBus()
    x = XConnector(bus.producer(), client(), None, store, mentions_of="42", max_pages=1)
    x.setup()
    asked: list[str] = []
    x.client.session.hooks["response"].append(lambda r, *a, **k: asked.append(r.request.url))
    with cassettes.player.use_cassette(str(path)):
        assert x.poll_once() == 10
    assert "/2/users/42/mentions" in asked[0]
    assert store.get_checkpoint("x:mentions:42") == NEWEST
    assert store.get_checkpoint("x:search:Tweepy") is None
    with pytest.raises(ValueError, match="either a search query or a user id"):
        XConnector(bus.producer(), client(), "q", store, mentions_of="42")


def test_credentials_never_reach_the_logs(
    store: EmbeddedStore, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    recorded = cassettes.load(SEARCH)["interactions"][0]
    failing = cassettes.with_status(recorded, 503, {"title": "Service Unavailable"})
    path = cassettes.write(tmp_path / "logged.yaml", [failing, recorded])
    x = connector(InProcessBus(), store)
    with cassettes.player.use_cassette(str(path)):
        stop_after_posts(x)
    assert "X unavailable" in caplog.text  # the connector did log, at warning level
    for secret in ("test-bearer", "Bearer "):
        assert secret not in caplog.text

"""The Reddit connector against real recorded Reddit API traffic (praw's own test cassettes, in
vcrpy's JSON layout), played back to the real praw client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import praw
import pytest

from connectors.reddit import RedditConnector
from pipeline.bus.kafka import KafkaBus
from pipeline.bus.memory import InProcessBus
from pipeline.records import DeadLetter, Post
from pipeline.store.embedded import EmbeddedStore
from tests.cassettes import FIXTURES, player

REDDIT = FIXTURES / "reddit_api"
SUBMISSIONS = "TestSubredditStreams.test_submissions"


def reddit() -> praw.Reddit:
    return praw.Reddit(
        client_id="id",
        client_secret="secret",
        user_agent="triage tests",
        username="<USERNAME>",
        password="<PASSWORD>",
    )


@contextmanager
def playing(name: str, library: Path, cassette: dict[str, Any] | None = None) -> Iterator[None]:
    """Play a recorded cassette; a changed one is written next to the test, never in ../shared."""
    path = REDDIT / f"{name}.json"
    if cassette is not None:
        library.mkdir(exist_ok=True)
        path = library / f"{name}.json"
        path.write_text(json.dumps(cassette))
    with player.use_cassette(str(path), serializer="json"):
        yield


def recorded_children(name: str, index: int) -> list[dict[str, Any]]:
    cassette = json.loads((REDDIT / f"{name}.json").read_text())
    body = json.loads(cassette["interactions"][index]["response"]["body"]["string"])
    return [child["data"] for child in body["data"]["children"]]


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    s = EmbeddedStore(tmp_path / "reddit.sqlite3")
    s.ensure_schema()
    return s


def connector(
    bus: InProcessBus | KafkaBus, store: EmbeddedStore, client: praw.Reddit, **kw: Any
) -> RedditConnector:
    c = RedditConnector(bus.producer(), client, ["all"], store, kinds=["submissions"], **kw)
    c.setup()
    return c


@pytest.mark.kafka
def test_recorded_submissions_become_posts_on_kafka(
    kafka_bootstrap: str, store: EmbeddedStore, tmp_path: Path, unique: str
) -> None:
    bus = KafkaBus(kafka_bootstrap)
    topic = f"raw.reddit.{unique}"
    bus.ensure_topics([topic])
    client = reddit()
    r = connector(bus, store, client, topic=topic)
    with playing(SUBMISSIONS, tmp_path / "cassettes"):
        r.poll_round(r.streams())
    posts = {
        p.native_id: p for p in (Post.model_validate_json(m.value) for m in bus.read_all(topic))
    }
    recorded = recorded_children(SUBMISSIONS, 1)
    assert len(posts) == len(recorded) > 0
    first = recorded[0]
    post = posts[first["name"]]
    assert post.source == "reddit" and post.author.id == first["author"]
    assert post.text.startswith(first["title"])
    assert post.created_at.timestamp() == first["created_utc"]
    assert post.url == "https://www.reddit.com" + first["permalink"]
    newest = max(posts, key=lambda f: int(f[3:], 36))
    assert store.get_checkpoint("reddit:submissions:all") == newest


def test_restart_continues_after_the_checkpoint(store: EmbeddedStore, tmp_path: Path) -> None:
    client = reddit()
    first = connector(InProcessBus(), store, client)
    with playing(SUBMISSIONS, tmp_path / "a"):
        first.poll_round(first.streams())
    checkpoint = store.get_checkpoint("reddit:submissions:all")
    assert checkpoint is not None

    client = reddit()
    asked: list[str] = []
    client._core._authorizer._authenticator._requestor._http.hooks["response"].append(
        lambda r, *a, **k: asked.append(r.request.url)
    )
    again = connector(InProcessBus(), store, client)
    with playing(SUBMISSIONS, tmp_path / "b"):
        again.poll_round(again.streams())
    listing = [url for url in asked if "/new" in url]
    assert f"before={checkpoint}" in listing[0]
    assert again.sent == 0  # nothing newer than what was already sent


def test_keywords_filter_what_is_sent(store: EmbeddedStore, tmp_path: Path) -> None:
    client = reddit()
    r = connector(InProcessBus(), store, client, keywords=["the"])
    with playing(SUBMISSIONS, tmp_path / "c"):
        r.poll_round(r.streams())
    recorded = recorded_children(SUBMISSIONS, 1)
    expected = sum("the" in f"{c['title']}\n\n{c['selftext']}".lower() for c in recorded)
    assert 0 < r.sent == expected < len(recorded)


def test_server_errors_are_retried(store: EmbeddedStore, tmp_path: Path) -> None:
    cassette = json.loads((REDDIT / f"{SUBMISSIONS}.json").read_text())
    listing = cassette["interactions"][1]
    failing = json.loads(json.dumps(listing))
    failing["response"]["status"] = {"code": 503, "message": "Service Unavailable"}
    failing["response"]["body"] = {"string": "", "encoding": "utf-8"}
    cassette["interactions"].insert(1, failing)
    client = reddit()
    r = connector(InProcessBus(), store, client)
    with playing("flaky", tmp_path / "d", cassette):
        r.poll_round(r.streams())
    assert r.sent == len(recorded_children(SUBMISSIONS, 1))


def test_agents_reply_on_reddit(store: EmbeddedStore, tmp_path: Path) -> None:
    client = reddit()
    r = connector(InProcessBus(), store, client)
    with playing("TestComment.test_reply", tmp_path / "e"):
        fullname = r.reply("t1_d1616q2", "Comment reply")
    assert fullname == "t1_d1680wu"


def test_malformed_things_go_to_the_dead_letter_topic(store: EmbeddedStore, tmp_path: Path) -> None:
    cassette = json.loads((REDDIT / f"{SUBMISSIONS}.json").read_text())
    listing = cassette["interactions"][1]["response"]["body"]
    body = json.loads(listing["string"])
    body["data"]["children"][0]["data"]["created_utc"] = "not a time"
    listing["string"] = json.dumps(body)
    bus = InProcessBus()
    client = reddit()
    r = connector(bus, store, client)
    with playing("malformed", tmp_path / "f", cassette):
        r.poll_round(r.streams())
    [letter] = [DeadLetter.model_validate_json(m.value) for m in bus.read_all("posts.dlq")]
    assert letter.stage == "connector:reddit"
    assert letter.reason.startswith("malformed submission: ValueError")
    assert r.sent == len(recorded_children(SUBMISSIONS, 1)) - 1

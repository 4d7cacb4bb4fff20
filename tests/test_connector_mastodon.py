"""The Mastodon connector against Mastodon.py's own recorded cassettes (a Mastodon 4.6 server),
played back to the real Mastodon.py client as that library's tests do (vcrpy). A poll reads until
an empty page, which is the recorded answer with no statuses in it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import yaml
from mastodon import Mastodon

from connectors.mastodon import MastodonConnector, html_text
from pipeline.bus.kafka import KafkaBus
from pipeline.bus.memory import InProcessBus
from pipeline.records import Post
from pipeline.store.embedded import EmbeddedStore
from tests.cassettes import FIXTURES, player, write

MASTODON = FIXTURES / "mastodon_api"
BASE = "http://localhost:3000"


def recorded(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load((MASTODON / name).read_text())["interactions"])


def reading(name: str, path: str, tmp_path: Path) -> str:
    """The recorded answers to ``path``, then an empty page: a timeline read to its end."""
    answers = [i for i in recorded(name) if i["request"]["uri"].split("?")[0] == BASE + path]
    empty = copy.deepcopy(answers[-1])
    empty["response"]["body"] = {"string": "[]"}
    return str(write(tmp_path / f"{name}.{len(answers)}", [*answers[:1], empty]))


def client() -> Mastodon:
    return Mastodon(api_base_url=BASE, access_token="test-token")


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    s = EmbeddedStore(tmp_path / "m.sqlite3")
    s.ensure_schema()
    return s


def connector(bus: Any, store: EmbeddedStore, **kw: Any) -> MastodonConnector:
    c = MastodonConnector(bus.producer(), client(), store, stream=False, **kw)
    c.setup()
    return c


@pytest.mark.kafka
def test_public_timeline_statuses_become_posts_on_kafka(
    kafka_bootstrap: str, store: EmbeddedStore, tmp_path: Path, unique: str
) -> None:
    bus = KafkaBus(kafka_bootstrap)
    topic = f"raw.mastodon.{unique}"
    bus.ensure_topics([topic])
    m = connector(bus, store, public="federated", topic=topic)
    with player.use_cassette(reading("test_public_tl.yaml", "/api/v1/timelines/public", tmp_path)):
        m.poll_all()
    posts = {
        p.native_id: p for p in (Post.model_validate_json(x.value) for x in bus.read_all(topic))
    }
    timeline = [i for i in recorded("test_public_tl.yaml") if "timelines" in i["request"]["uri"]]
    statuses = json.loads(timeline[0]["response"]["body"]["string"])
    assert len(posts) == len(statuses) == len({s["id"] for s in statuses}) > 1
    post = posts["localhost%3A3000/117020593378945190"]
    assert post.source == "mastodon" and post.native_id == "localhost%3A3000/117020593378945190"
    assert post.text == "Toot, finally!"  # the HTML <p> stripped
    assert post.language == "ja" and post.author.handle == "mastodonpy_test_2"
    assert post.url == "http://localhost:3000/@mastodonpy_test_2/117020593378945190"
    assert post.raw["visibility"] == "public"
    newest = max((s["id"] for s in statuses), key=int)
    assert store.get_checkpoint("mastodon:localhost:3000:public:federated") == newest


def test_a_restart_reads_on_from_its_checkpoint_per_timeline(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    cassette = reading("test_public_tl.yaml", "/api/v1/timelines/public", tmp_path)
    with player.use_cassette(cassette):
        connector(InProcessBus(), store, public="local").poll_all()
    again = connector(InProcessBus(), store, public="local", hashtags=["brand"])
    asked: list[dict[str, list[str]]] = []
    again.client.session.hooks["response"].append(
        lambda r, *a, **k: asked.append(parse_qs(r.request.url.partition("?")[2]))
    )
    with player.use_cassette(cassette):
        again.poll_timeline("public:local")
    assert asked[0]["min_id"] == ["117020593378945190"] and asked[0]["local"] == ["1"]
    assert again.sent == 0
    assert again.checkpoints["tag:brand"] is None  # each timeline has its own checkpoint


def test_mentions_come_from_the_notifications(store: EmbeddedStore, tmp_path: Path) -> None:
    bus = InProcessBus()
    m = connector(bus, store, mentions=True)
    cassette = reading("test_notifications_mentions_only.yaml", "/api/v1/notifications", tmp_path)
    asked: list[str] = []
    m.client.session.hooks["response"].append(lambda r, *a, **k: asked.append(r.request.url))
    with player.use_cassette(cassette):
        m.poll_all()
    posts = [Post.model_validate_json(x.value) for x in bus.read_all("posts.raw")]
    assert len(posts) == 1 and "types%5B%5D=mention" in asked[0]
    assert posts[0].native_id == "localhost%3A3000/117020577157693549"
    assert store.get_checkpoint("mastodon:localhost:3000:mentions") == "21"


def test_an_unhealthy_streaming_api_falls_back_to_polling(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    interactions = recorded("test_stream_healthy.yaml")
    interactions[-1]["response"]["status"] = {"code": 502, "message": "Bad Gateway"}
    interactions[-1]["response"]["body"] = {"string": "Bad Gateway"}
    m = MastodonConnector(InProcessBus().producer(), client(), store, hashtags=["brand"])
    with player.use_cassette(str(write(tmp_path / "unhealthy.yaml", interactions))):
        assert m.stream_once() is False
    assert m.mode == "polling" and m.use_stream is False


def test_agents_reply_in_the_thread_with_the_original_visibility(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    created, me, reply = recorded("test_status_reply.yaml")[:3]
    original = copy.deepcopy(created)
    original["request"] = dict(
        created["request"],
        method="GET",
        body=None,
        uri=f"{BASE}/api/v1/statuses/117020583245459824",
    )
    m = connector(InProcessBus(), store, mentions=True)
    sent: list[str] = []
    m.client.session.hooks["response"].append(
        lambda r, *a, **k: sent.append(str(r.request.body or ""))
    )
    with player.use_cassette(str(write(tmp_path / "reply.yaml", [original, me, reply]))):
        new_id = m.reply("localhost%3A3000/117020583245459824", "hello")
    assert new_id == "localhost%3A3000/117020583258292382"
    assert "in_reply_to_id=117020583245459824" in sent[-1] and "visibility=" in sent[-1]


def test_html_is_stripped_to_what_a_reader_sees() -> None:
    html = (
        '<p>Hi <a href="https://x.example/@a">@<span>acme</span></a>,</p>'
        "<p>it broke<br>again &amp; again</p>"
    )
    assert html_text(html) == "Hi @acme,\n\nit broke\nagain & again"

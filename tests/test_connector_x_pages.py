"""The X connector over a multi-page search, cut at every page boundary (stop, page cap, 429, 503)
and restarted: every tweet reaches the bus exactly once and the checkpoint never skips a page.

The three pages are the ten tweets of tweepy's recorded search, split in X's layout (newest first,
``meta`` with ``newest_id``, ``oldest_id``, ``result_count`` and ``next_token`` on all but the last
page). The cassette answers as X's recent search does: matched on ``since_id``, ``until_id`` and
``next_token``, a query for tweets older than ``until_id`` gets the tweets older than that id. A
connector that asked for anything else (a moved ``since_id``, a lost ``until_id``) finds no
recorded answer and the test fails.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import tweepy

from connectors.x import XConnector
from pipeline.bus.kafka import KafkaBus
from pipeline.bus.memory import InProcessBus
from pipeline.records import Post
from pipeline.store.embedded import EmbeddedStore
from tests import cassettes

SEARCH = "test_client_search_recent_tweets.yaml"
URL = "https://api.twitter.com/2/tweets/search/recent"
SIZES = (4, 3, 3)
BEFORE = "1578511000000000000"  # the checkpoint of an earlier poll, older than every tweet


def paged_query(r1: Any, r2: Any) -> None:
    """vcrpy matcher: the same page of the same query."""
    keys = ("since_id", "until_id", "next_token")
    q1, q2 = parse_qs(urlsplit(r1.uri).query), parse_qs(urlsplit(r2.uri).query)
    assert [q1.get(k) for k in keys] == [q2.get(k) for k in keys]


player = copy.copy(cassettes.player)
player.register_matcher("paged_query", paged_query)
player.match_on = ("method", "path", "paged_query")


def tweets() -> list[dict[str, Any]]:
    return list(cassettes.body_json(cassettes.load(SEARCH)["interactions"][0])["data"])


def pages() -> list[list[dict[str, Any]]]:
    all_tweets, out, at = tweets(), [], 0
    for size in SIZES:
        out.append(all_tweets[at : at + size])
        at += size
    return out


def interaction(query: dict[str, str], body: dict[str, Any], code: int = 200) -> dict[str, Any]:
    recorded = cassettes.load(SEARCH)["interactions"][0]
    answered = cassettes.with_status(recorded, code, body)
    answered["request"] = dict(answered["request"], uri=f"{URL}?{urlencode(query)}")
    return answered


def recent_search(faults: dict[tuple[str | None, str | None], int] | None = None) -> list[Any]:
    """X's answers to every query a resuming connector may send: from the top, and from below the
    oldest id of each page; ``faults`` answers one (until_id, next_token) once with an error."""
    interactions = []
    split = pages()
    for start in range(len(split)):
        until = split[start - 1][-1]["id"] if start else None
        token = None
        for number in range(start, len(split)):
            page = split[number]
            query = {"since_id": BEFORE, **({"until_id": until} if until else {})}
            if token:
                query["next_token"] = token
            key = (until, token)
            if faults and key in faults:
                interactions.append(interaction(query, {"title": "fault"}, faults[key]))
            token = f"page-{start}-{number + 1}" if number + 1 < len(split) else None
            meta = {
                "newest_id": page[0]["id"],
                "oldest_id": page[-1]["id"],
                "result_count": len(page),
                **({"next_token": token} if token else {}),
            }
            interactions.append(interaction(query, {"data": page, "meta": meta}))
    return interactions


def client() -> tweepy.Client:
    return tweepy.Client(bearer_token="test-bearer")


def connector(bus: InProcessBus | KafkaBus, store: EmbeddedStore, **kw: Any) -> XConnector:
    x = XConnector(bus.producer(), client(), "Tweepy", store, max_results=10, **kw)
    x.setup()
    return x


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    s = EmbeddedStore(tmp_path / "x.sqlite3")
    s.ensure_schema()
    s.set_checkpoint("x:search:Tweepy", BEFORE)
    return s


def finish(bus: InProcessBus | KafkaBus, store: EmbeddedStore, path: Path | None) -> None:
    """Restart, as after a crash or a Ctrl-C, and poll until the poll is finished (in the
    cassette already playing when no path is given)."""
    again = connector(bus, store)
    if path is None:
        again.poll_once()
    else:
        with player.use_cassette(str(path)):
            again.poll_once()
    assert again.poll_finished


def assert_exactly_once(ids: list[str], store: EmbeddedStore) -> None:
    assert sorted(ids) == sorted(t["id"] for t in tweets())
    assert store.get_checkpoint("x:search:Tweepy") == tweets()[0]["id"]
    assert not store.get_checkpoint("x:search:Tweepy:resume")


def on_bus(bus: InProcessBus | KafkaBus, topic: str = "posts.raw") -> list[str]:
    return [Post.model_validate_json(m.value).native_id for m in bus.read_all(topic)]


@pytest.mark.parametrize("boundary", [1, 2])
def test_stopped_at_a_page_boundary_resumes_below_the_last_page_delivered(
    boundary: int, store: EmbeddedStore, tmp_path: Path
) -> None:
    path = cassettes.write(tmp_path / "pages.yaml", recent_search())
    bus = InProcessBus()
    x = connector(bus, store)
    delivered = sum(SIZES[:boundary])
    emit = x.emit

    def emit_then_stop(post: Post) -> None:
        emit(post)
        if x.sent == delivered:
            x.stop()  # Ctrl-C while the page is being sent: the page still goes out whole

    x.emit = emit_then_stop  # type: ignore[method-assign]
    with player.use_cassette(str(path)):
        x.start()
    assert x.sent == delivered
    # the poll is not over: since_id stays, and the resume state says where it stopped
    assert store.get_checkpoint("x:search:Tweepy") == BEFORE
    resume = json.loads(store.get_checkpoint("x:search:Tweepy:resume") or "{}")
    assert resume == {"until_id": pages()[boundary - 1][-1]["id"], "newest": tweets()[0]["id"]}
    finish(bus, store, path)
    assert_exactly_once(on_bus(bus), store)


@pytest.mark.parametrize("cap", [1, 2])
def test_the_page_cap_goes_on_where_it_stopped_at_the_next_poll(
    cap: int, store: EmbeddedStore, tmp_path: Path
) -> None:
    path = cassettes.write(tmp_path / "pages.yaml", recent_search())
    bus = InProcessBus()
    x = connector(bus, store, max_pages=cap)
    with player.use_cassette(str(path)):
        polls = 0
        while polls == 0 or not x.poll_finished:
            x.poll_once()
            polls += 1
    assert polls == -(-len(SIZES) // cap)
    assert_exactly_once(on_bus(bus), store)


@pytest.mark.parametrize("code", [429, 503])
@pytest.mark.parametrize("boundary", [0, 1, 2])
def test_a_rate_limit_or_outage_at_any_page_then_a_restart_loses_and_repeats_nothing(
    code: int, boundary: int, store: EmbeddedStore, tmp_path: Path
) -> None:
    split = pages()
    until = split[boundary - 1][-1]["id"] if boundary else None
    # the fault hits the next page of the poll in flight: token of the first poll's page
    key = (None, f"page-0-{boundary}") if boundary else (None, None)
    path = cassettes.write(tmp_path / "faulty.yaml", recent_search({key: code}))
    bus = InProcessBus()
    x = connector(bus, store, max_backoff_s=0.01)
    with player.use_cassette(str(path)):  # one X: the fault is answered once
        assert x.try_poll() is False
        assert x.sent == sum(SIZES[:boundary])
        assert x.waits and x.waits[0] <= 0.01
        saved = json.loads(store.get_checkpoint("x:search:Tweepy:resume") or "{}")
        assert saved.get("until_id") == until
        finish(bus, store, None)
    assert_exactly_once(on_bus(bus), store)


@pytest.mark.kafka
def test_cut_at_every_boundary_on_kafka_every_tweet_once(
    kafka_bootstrap: str, store: EmbeddedStore, tmp_path: Path, unique: str
) -> None:
    bus = KafkaBus(kafka_bootstrap)
    topic = f"raw.x.pages.{unique}"
    bus.ensure_topics([topic])
    path = cassettes.write(tmp_path / "pages.yaml", recent_search())
    for _ in SIZES:  # one page per run, each run a fresh process on the same checkpoint
        x = XConnector(bus.producer(), client(), "Tweepy", store, max_pages=1, topic=topic)
        x.setup()
        with player.use_cassette(str(path)):
            x.poll_once()
    assert x.poll_finished
    assert_exactly_once(on_bus(bus, topic), store)

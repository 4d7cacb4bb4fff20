"""The X filtered-stream connector, fed the recorded tweets of tweepy's own search cassette as X's
filtered stream delivers them (one JSON object per line), through the real tweepy client."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import tweepy

from connectors.x_stream import RULE_TAG, RuleStream, XStreamConnector
from pipeline.bus.kafka import KafkaBus
from pipeline.bus.memory import InProcessBus
from pipeline.records import DeadLetter, Post
from pipeline.store.embedded import EmbeddedStore
from tests import cassettes

SEARCH = "test_client_search_recent_tweets.yaml"
NEWEST = "1578516068309794817"
API = "https://api.twitter.com/2"


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    s = EmbeddedStore(tmp_path / "x.sqlite3")
    s.ensure_schema()
    return s


def recorded() -> dict[str, Any]:
    return cassettes.last_page(cassettes.load(SEARCH)["interactions"][0])


def answer(method: str, path: str, code: int, body: str) -> dict[str, Any]:
    """The recorded exchange, re-addressed: same headers X sends, another endpoint's body."""
    base = cassettes.with_status(recorded(), code, {})
    interaction = copy.deepcopy(base)
    interaction["request"] = dict(base["request"], method=method, uri=f"{API}{path}")
    interaction["response"]["body"] = {"string": body}
    return interaction


def stream_lines(extra: list[str] = ()) -> str:  # type: ignore[assignment]
    tweets = cassettes.body_json(recorded())["data"]
    rule = [{"id": "1", "tag": RULE_TAG}]
    lines = [json.dumps({"data": t, "matching_rules": rule}) for t in tweets]
    return "\r\n".join([*lines, *extra]) + "\r\n"


def rules_body(rules: list[dict[str, str]]) -> str:
    return json.dumps({"data": rules, "meta": {"result_count": len(rules)}} if rules else {
        "meta": {"result_count": 0}
    })


def connector(bus: InProcessBus | KafkaBus, store: EmbeddedStore, **kw: Any) -> XStreamConnector:
    client = tweepy.Client(bearer_token="test-bearer")
    x = XStreamConnector(
        bus.producer(),
        client,
        lambda on_line: RuleStream("test-bearer", on_line),
        ["Tweepy"],
        store,
        reconnect_backoff_s=0.05,
        max_pages=1,
        **kw,
    )
    x.setup()
    return x


def asked(x: XStreamConnector) -> list[Any]:
    """Every request the connector's clients send, in order, as they went on the wire."""
    sent: list[Any] = []
    for session in (x.client.session, x.stream.session):
        session.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
    return sent


def run_until(x: XStreamConnector, handled: int, timeout_s: float = 20.0) -> None:
    """Run the connector until it has handled this many records, then stop it as Ctrl-C does."""
    thread = threading.Thread(target=x.start)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while x.sent + x.rejected < handled and time.monotonic() < deadline:
        time.sleep(0.05)
    x.stop()
    thread.join(10)
    assert not thread.is_alive(), "the connector did not stop"
    assert x.sent + x.rejected >= handled, f"only {x.sent} sent, {x.rejected} rejected"


@pytest.mark.kafka
def test_streamed_tweets_become_posts_on_kafka_and_bad_lines_dead_letters(
    kafka_bootstrap: str, store: EmbeddedStore, unique: str, tmp_path: Path
) -> None:
    bus = KafkaBus(kafka_bootstrap)
    raw, dlq = f"raw.xs.{unique}", f"dlq.xs.{unique}"
    bus.ensure_topics([raw, dlq])
    no_text = json.dumps({"data": {"id": "1578516068309794999"}})
    path = cassettes.write(
        tmp_path / "stream.yaml",
        [
            answer("GET", "/tweets/search/stream/rules", 200, rules_body([])),
            answer("POST", "/tweets/search/stream/rules", 201, rules_body(
                [{"id": "1", "value": "Tweepy", "tag": RULE_TAG}]
            )),
            answer("GET", "/tweets/search/stream", 200, stream_lines(["{not json", no_text])),
        ],
    )
    x = connector(bus, store, topic=raw, dlq_topic=dlq)
    played = asked(x)
    with cassettes.player.use_cassette(str(path)):
        run_until(x, 12)
    added = json.loads(next(r.body for r in played if r.method == "POST"))
    assert added == {"add": [{"value": "Tweepy", "tag": RULE_TAG}]}
    posts = [Post.model_validate_json(m.value) for m in bus.read_all(raw)]
    assert len({p.id for p in posts}) == 10 and x.mode == "stream"
    letters = [DeadLetter.model_validate_json(m.value) for m in bus.read_all(dlq)]
    assert len(letters) == 2
    assert {d.stage for d in letters} == {"connector:x-stream"}
    assert store.get_checkpoint(x.key) == NEWEST


def test_rules_are_synced_leaving_other_tools_rules_alone(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    existing = [
        {"id": "7", "value": "old rule", "tag": RULE_TAG},
        {"id": "8", "value": "someone else's", "tag": "another-tool"},
        {"id": "9", "value": "Tweepy", "tag": RULE_TAG},
    ]
    path = cassettes.write(
        tmp_path / "sync.yaml",
        [
            answer("GET", "/tweets/search/stream/rules", 200, rules_body(existing)),
            answer("POST", "/tweets/search/stream/rules", 200, json.dumps(
                {"meta": {"summary": {"deleted": 1}}}
            )),
        ],
    )
    x = connector(InProcessBus(), store)
    played = asked(x)
    with cassettes.player.use_cassette(str(path)):
        x.sync_rules()
    posted = [json.loads(r.body) for r in played if r.method == "POST"]
    assert posted == [{"delete": {"ids": ["7"]}}]


def test_refused_rules_are_a_clear_error(store: EmbeddedStore, tmp_path: Path) -> None:
    refused = {"errors": [{"value": "Tweepy", "title": "UnprocessableEntity"}], "meta": {}}
    path = cassettes.write(
        tmp_path / "refused.yaml",
        [
            answer("GET", "/tweets/search/stream/rules", 200, rules_body([])),
            answer("POST", "/tweets/search/stream/rules", 200, json.dumps(refused)),
        ],
    )
    x = connector(InProcessBus(), store)
    with cassettes.player.use_cassette(str(path)), pytest.raises(ValueError, match="refused"):
        x.sync_rules()


def test_without_stream_access_it_polls_recent_search_instead(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    forbidden = json.dumps(
        {
            "title": "Client Forbidden",
            "detail": "This request must be made using an approved developer account",
            "reason": "client-not-enrolled",
            "type": "https://api.twitter.com/2/problems/client-forbidden",
        }
    )
    path = cassettes.write(
        tmp_path / "forbidden.yaml",
        [answer("GET", "/tweets/search/stream/rules", 403, forbidden), recorded()],
    )
    x = connector(InProcessBus(), store)
    played = asked(x)
    with cassettes.player.use_cassette(str(path)):
        run_until(x, 10)
    assert x.mode == "polling"
    search = next(r.url for r in played if "/search/recent" in r.url)
    assert "query=%28Tweepy%29" in search
    assert store.get_checkpoint(x.key) == NEWEST


def test_a_restart_catches_up_from_the_checkpoint_before_streaming(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    path = cassettes.write(
        tmp_path / "restart.yaml",
        [
            answer("GET", "/tweets/search/stream/rules", 200, rules_body(
                [{"id": "1", "value": "Tweepy", "tag": RULE_TAG}]
            )),
            recorded(),
            answer("GET", "/tweets/search/stream", 200, stream_lines()),
        ],
    )
    first = connector(InProcessBus(), store)
    store.set_checkpoint(first.key, "1578000000000000000")
    x = connector(InProcessBus(), store)
    assert x.since_id == "1578000000000000000"
    played = asked(x)
    with cassettes.player.use_cassette(str(path)):
        run_until(x, 20)
    order = [r.url.split("?")[0].removeprefix(API) for r in played]
    assert order[:3] == ["/tweets/search/stream/rules", "/tweets/search/recent",
                         "/tweets/search/stream"]
    catch_up = next(r.url for r in played if "/search/recent" in r.url)
    assert "since_id=1578000000000000000" in catch_up

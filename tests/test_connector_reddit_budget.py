"""The Reddit connector as a good API citizen: praw's recorded traffic, answered with the rate-limit
headers Reddit sends (``x-ratelimit-remaining``, ``-used``, ``-reset``), and a 429 stub with reset
headers, played to the real praw client."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.reddit import RedditBudget, RedditConnector, http_session
from pipeline.bus.memory import InProcessBus
from pipeline.errors import TransientError
from pipeline.records import Post
from pipeline.store.embedded import EmbeddedStore
from tests.test_connector_reddit import REDDIT, SUBMISSIONS, playing, recorded_children, reddit

NOW = 1_700_000_000.0


def with_headers(interaction: dict[str, Any], **headers: str) -> dict[str, Any]:
    changed = copy.deepcopy(interaction)
    for name, value in headers.items():
        changed["response"]["headers"][name.replace("_", "-")] = [value]
    return changed


def submissions(**headers: str) -> dict[str, Any]:
    """The recorded listings, each answered with the given rate-limit headers."""
    cassette = json.loads((REDDIT / f"{SUBMISSIONS}.json").read_text())
    cassette["interactions"] = [
        with_headers(i, **headers) if "/new" in i["request"]["uri"] else i
        for i in cassette["interactions"]
    ]
    return cassette


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    s = EmbeddedStore(tmp_path / "reddit.sqlite3")
    s.ensure_schema()
    return s


def connector(store: EmbeddedStore, bus: InProcessBus, **kw: Any) -> RedditConnector:
    client = reddit()
    budget = RedditBudget(store, "id", reserve=10, clock=lambda: NOW)
    c = RedditConnector(
        bus.producer(), client, ["all"], store, kinds=["submissions"], budget=budget, **kw
    )
    c.setup()
    return c


def one_round_then_stop(c: RedditConnector) -> None:
    """Run, as ``triage connect reddit`` does, until the first pause between rounds."""
    pause = c.pause

    def stop_at_the_pause(seconds: float) -> bool:
        pause(0)
        c.waits[-1] = seconds
        if c.sent:
            c.stop()
        return not c.running

    c.pause = stop_at_the_pause  # type: ignore[method-assign]
    c.start()


def test_a_429_waits_for_the_reset_it_gives_and_loses_nothing(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    cassette = submissions(
        x_ratelimit_remaining="500", x_ratelimit_used="100", x_ratelimit_reset="300"
    )
    listing = cassette["interactions"][1]
    limited = with_headers(
        listing, x_ratelimit_remaining="0", x_ratelimit_used="600", x_ratelimit_reset="1"
    )
    limited["response"]["status"] = {"code": 429, "message": "Too Many Requests"}
    limited["response"]["body"] = {"string": "", "encoding": "utf-8"}
    cassette["interactions"].insert(1, limited)
    bus = InProcessBus()
    c = connector(store, bus, round_interval_s=5.0)
    with playing("limited", tmp_path / "a", cassette):
        one_round_then_stop(c)
    assert c.waits[0] == 2.0  # the reset Reddit gave, and a second's margin
    sent = {Post.model_validate_json(m.value).native_id for m in bus.read_all("posts.raw")}
    assert sent == {child["name"] for child in recorded_children(SUBMISSIONS, 1)}


def test_rounds_pause_and_spread_the_requests_over_the_window(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    # 50 left for 100 s, 10 of them kept for replies: each listing request may cost 100/40 s
    cassette = submissions(
        x_ratelimit_remaining="50", x_ratelimit_used="550", x_ratelimit_reset="100"
    )
    c = connector(store, InProcessBus(), round_interval_s=1.0)
    listings: list[str] = []
    http_session(c.reddit).hooks["response"].append(
        lambda r, *a, **k: listings.append(r.url) if "/new" in r.url else None
    )
    with playing("paced", tmp_path / "b", cassette):
        one_round_then_stop(c)
    assert listings and c.waits[-1] == pytest.approx(100 * len(listings) / 40)
    # plenty left: the pause between rounds is the configured one
    roomy = submissions(x_ratelimit_remaining="590", x_ratelimit_used="10", x_ratelimit_reset="100")
    other = EmbeddedStore(tmp_path / "other.sqlite3")
    other.ensure_schema()
    c = connector(other, InProcessBus(), round_interval_s=30.0)
    with playing("roomy", tmp_path / "c", roomy):
        one_round_then_stop(c)
    assert c.waits[-1] == 30.0


def test_replies_and_the_connector_spend_one_budget(store: EmbeddedStore, tmp_path: Path) -> None:
    cassette = json.loads((REDDIT / "TestComment.test_reply.json").read_text())
    cassette["interactions"][1] = with_headers(
        cassette["interactions"][1],
        x_ratelimit_remaining="0",
        x_ratelimit_used="600",
        x_ratelimit_reset="60",
    )
    replier = connector(store, InProcessBus())
    with playing("reply", tmp_path / "d", cassette):
        assert replier.reply("t1_d1616q2", "Comment reply") == "t1_d1680wu"
    # another process on the same store and credentials: the connector waits for the reset
    listener = connector(store, InProcessBus())
    assert listener.budget.pace(1) == 60.0
    # and a reply now would fail fast, to be retried by the queue after the reset
    with pytest.raises(TransientError, match="allowance is spent"):
        replier.reply("t1_d1616q2", "again")

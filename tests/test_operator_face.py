"""What the operator page concludes: each flow's state and next run, each connector's state from
its checkpoints, and which dead letters a reprocess could help."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from fastapi.testclient import TestClient

from connectors.reddit import RedditBudget
from dashboards.api import create_app
from dashboards.auth import make_account
from dashboards.operator_face import X_EPOCH_MS, connector_states, flow_states, group_dead_letters
from flows.run_log import FLOW_RUNS
from pipeline.records import DeadLetter
from pipeline.store.embedded import EmbeddedStore
from pipeline.store.interface import Store
from tests.helpers import make_post

NOW = datetime(2026, 12, 4, 13, 42, 10, tzinfo=UTC)


def run(store: EmbeddedStore, flow: str, ago: timedelta, failed: bool = False) -> None:
    store.put_record(FLOW_RUNS, flow, {
        "flow": flow, "run": f"{flow}-1", "state": "Failed" if failed else "Completed",
        "failed": failed, "message": "", "started_at": (NOW - ago).isoformat(),
        "ended_at": (NOW - ago).isoformat(),
    })


def test_each_flow_says_when_it_ran_how_and_when_it_runs_next(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "s.sqlite3")
    store.ensure_schema()
    run(store, "sla-watchdog", timedelta(seconds=40))
    run(store, "health", timedelta(hours=2))  # every 5 minutes: long overdue
    run(store, "retrain", timedelta(hours=10), failed=True)
    states = {f.name: f for f in flow_states(store, NOW)}
    assert list(states) == [
        "ingest", "retrain", "trend-report", "sla-watchdog", "replay", "alerts", "health"
    ]
    assert {n: f.state for n, f in states.items()} == {
        "ingest": "on demand",
        "retrain": "failed",
        "trend-report": "never ran",
        "sla-watchdog": "ok",
        "replay": "on demand",
        "alerts": "on demand",
        "health": "overdue",
    }
    assert states["sla-watchdog"].next_run == datetime(2026, 12, 4, 13, 43, tzinfo=UTC)
    assert states["health"].next_run == datetime(2026, 12, 4, 13, 45, tzinfo=UTC)
    assert states["trend-report"].next_run == datetime(2026, 12, 4, 14, 5, tzinfo=UTC)
    assert states["retrain"].next_run == datetime(2026, 12, 5, 3, 30, tzinfo=UTC)
    assert states["ingest"].next_run is None and states["ingest"].healthy
    assert not states["health"].healthy


def letter(raw: bytes, reason: str, stage: str = "validate") -> DeadLetter:
    return DeadLetter(reason=reason, stage=stage, original=base64.b64encode(raw).decode(),
                      topic="posts.raw", failed_at=NOW)


def test_dead_letters_group_by_reason_and_only_parseable_ones_can_be_reprocessed() -> None:
    good = make_post(1).model_dump_json().encode()
    dead = [
        ("0:1", letter(b"not json", "invalid JSON")),
        ("0:2", letter(b"{also not", "invalid JSON")),
        ("0:3", letter(good, "store unreachable after 5 retries", "store")),
        ("1:1", letter(b'{"source": "demo", "native_id": "x"}', "author: Field required")),
    ]
    groups = {g.reason: g for g in group_dead_letters(dead)}
    assert [len(g.letters) for g in group_dead_letters(dead)] == [2, 1, 1]
    assert not groups["invalid JSON"].fixable
    assert not groups["author: Field required"].fixable
    assert groups["store unreachable after 5 retries"].fixable


def test_letters_that_share_their_first_problem_share_a_group() -> None:
    dead = [
        ("0:1", letter(b"{}", "invalid post: author: Field required; text: Field required")),
        ("0:2", letter(b'{"text": 4}', "invalid post: author: Field required; text: not a str")),
    ]
    (group,) = group_dead_letters(dead)
    assert group.reason == "invalid post: author: Field required" and len(group.letters) == 2


def snowflake(at: datetime) -> str:
    """An X id made at ``at``, as X makes them."""
    return str((int(at.timestamp() * 1000) - X_EPOCH_MS) << 22)


def save_connectors(store: Store, now: datetime) -> None:
    """Checkpoints as the four connectors write them (connectors/*.py): an X search whose poll
    stopped between pages three minutes' worth of posts back, X mentions polled to the end, a
    Reddit client whose shared allowance is spent for five more minutes (saved by the budget
    itself, from Reddit's headers), a Bluesky cursor half
    an hour behind the stream, and a Mastodon hashtag timeline."""
    store.set_checkpoint("x:search:acme", snowflake(now - timedelta(minutes=3)))
    store.set_checkpoint("x:search:acme:resume", json.dumps(
        {"until_id": snowflake(now - timedelta(minutes=1)), "newest": snowflake(now)}))
    store.set_checkpoint("x:mentions:42", snowflake(now - timedelta(hours=1)))
    store.set_checkpoint("x:mentions:42:resume", "")
    answer = requests.Response()  # Reddit's answer as the budget's response hook sees it
    answer.headers.update({"x-ratelimit-remaining": "4.0", "x-ratelimit-used": "96",
                           "x-ratelimit-reset": "300"})
    RedditBudget(store, "client-1", clock=now.timestamp)._on_response(answer)
    store.set_checkpoint("reddit:submissions:acme+acmehelp", "t3_1abcde")
    time_us = int((now - timedelta(minutes=30)).timestamp() * 1_000_000)
    store.set_checkpoint("bluesky:jetstream", json.dumps({"cursor": time_us, "recent": {}}))
    store.set_checkpoint("mastodon:mastodon.social:tag:acme", "113612345678901234")


def test_a_network_never_run_says_so(store: Store) -> None:
    states = connector_states(store, datetime.now(UTC))
    assert [(c.network, c.state) for c in states] == [
        ("x", "never ran"), ("reddit", "never ran"), ("bluesky", "never ran"),
        ("mastodon", "never ran"),
    ]


def test_each_connector_states_where_it_is_from_its_checkpoints(store: Store) -> None:
    now = datetime.now(UTC)
    save_connectors(store, now)
    states = {(c.network, c.reads): c for c in connector_states(store, now)}
    assert {k: (c.state, c.minutes) for k, c in states.items()} == {
        ("x", "mentions:42"): ("live", 0),
        ("x", "search:acme"): ("behind", 3),
        ("reddit", "budget:client-1"): ("paused", 0),
        ("reddit", "submissions:acme+acmehelp"): ("paused", 0),
        ("bluesky", "jetstream"): ("behind", 30),
        ("mastodon", "mastodon.social:tag:acme"): ("live", 0),
    }
    reset = datetime.fromtimestamp((now + timedelta(minutes=5)).timestamp(), UTC)
    assert states["reddit", "submissions:acme+acmehelp"].until == reset
    assert states["reddit", "budget:client-1"].detail == "4 / 100"
    assert all(c.last_saved is not None and c.last_saved <= now + timedelta(seconds=5)
               for c in states.values())
    after = datetime.now(UTC) + timedelta(minutes=10)  # ten minutes after the last save
    later = {(c.network, c.reads): c for c in connector_states(store, after)}
    assert (later["mastodon", "mastodon.social:tag:acme"].state,
            later["mastodon", "mastodon.social:tag:acme"].minutes) == ("quiet", 10)
    assert later["reddit", "budget:client-1"].state == "live"  # a new window began
    assert later["reddit", "submissions:acme+acmehelp"].state == "quiet"
    assert later["bluesky", "jetstream"].minutes == 40


def test_the_operator_page_shows_the_connectors_in_both_languages(store: Store) -> None:
    now = datetime.now(UTC)
    save_connectors(store, now)
    store.save_user(make_account("ops", "operator password", ["operator"]))
    client = TestClient(create_app(store))
    login = {"name": "ops", "password": "operator password"}
    assert client.post("/api/v1/login", json=login).status_code == 200
    page = client.get("/operator")
    assert page.status_code == 200
    rows = dict(re.findall(r'data-reads="([^"]*)" data-state="([^"]*)"', page.text))
    assert rows == {
        "mentions:42": "live", "search:acme": "behind", "budget:client-1": "paused",
        "submissions:acme+acmehelp": "paused", "jetstream": "behind",
        "mastodon.social:tag:acme": "live",
    }
    until = (now + timedelta(minutes=5)).strftime("%H:%M")
    assert f"paused for rate limit until {until} UTC" in page.text
    assert "behind by 30 min" in page.text and "behind by 3 min" in page.text
    assert 'data-healthy="no"' in page.text and "bluesky jetstream: behind by 30 min" in page.text
    chinese = client.get("/operator", params={"lang": "zh"}).text
    assert "连接器" in chinese and "落后 30 分钟" in chinese
    assert f"因限流暂停至 {until} UTC" in chinese

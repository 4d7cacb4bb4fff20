"""What the operator page concludes: each flow's state and next run, and which dead letters a
reprocess could help."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dashboards.operator_face import flow_states, group_dead_letters
from flows.run_log import FLOW_RUNS
from pipeline.records import DeadLetter
from pipeline.store.embedded import EmbeddedStore
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
    assert list(states) == ["ingest", "retrain", "trend-report", "sla-watchdog", "replay", "health"]
    assert {n: f.state for n, f in states.items()} == {
        "ingest": "on demand",
        "retrain": "failed",
        "trend-report": "never ran",
        "sla-watchdog": "ok",
        "replay": "on demand",
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

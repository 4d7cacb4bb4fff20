"""The trend-report flow writes the report of the last full hour and keeps it in the store.

With counts, it runs on the embedded store: the trend detector's count buckets are nested arrays,
which FerretDB v1 refuses ("nested arrays are not supported"; MongoDB takes them). On FerretDB
it reports an hour without counts, which exercises reading and storing the report there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from classifiers.triager import Triager
from flows.trend_report import trend_report
from pipeline.records import Author, Post
from pipeline.settings import Settings
from pipeline.store import open_store
from pipeline.trends.detector import TrendDetector
from tests.flow_runs.conftest import run_artifacts
from tests.helpers import TEXTS

pytestmark = [pytest.mark.mongo, pytest.mark.slow]
HOUR = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_the_last_full_hour_is_reported_and_stored(
    deployment_env: dict[str, str],
    triager: Triager,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TRIAGE_MONGO_URI")  # the embedded store under TRIAGE_DATA_DIR
    posts = [
        Post(
            source="test",
            native_id=str(i),
            author=Author(id=f"a{i}"),
            text=TEXTS[i % 4],  # no spam among the first four
            created_at=HOUR + timedelta(minutes=i),
        )
        for i in range(30)
    ]
    store = open_store(Settings.from_environment())
    store.ensure_schema()
    detector = TrendDetector(store)
    triaged = triager.triage(posts, HOUR + timedelta(minutes=59))
    detector.update(triaged, HOUR + timedelta(minutes=59))
    detector.flush(everything=True)
    counted = sum(not t.is_spam for t in triaged)

    # run at 10:20: the last full hour is 09:00-10:00
    run_at = HOUR + timedelta(hours=1, minutes=20)
    state = trend_report(period="hour", until=run_at, return_state=True)

    assert state.is_completed(), state.message
    done = state.result()
    assert done["since"].startswith("2026-11-20T09:00")
    assert done["until"].startswith("2026-11-20T10:00")
    assert done["posts"] == counted > 0
    assert b"<html" in Path(done["path"]).read_bytes()[:500].lower()
    latest = store.get_record("trend_report", "latest:hour")
    assert latest is not None and latest["posts"] == counted and latest["path"] == done["path"]
    assert store.get_record("trend_report", f"hour:{latest['since']}") is not None
    assert "rising topic" in run_artifacts(state)["trend-report-hour"].data
    store.close()


def test_an_hour_without_posts_is_reported_and_stored_in_ferretdb(
    deployment_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    state = trend_report(period="day", until=HOUR, return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["since"].startswith("2026-11-19T00:00")
    store = open_store(Settings.from_environment())
    latest = store.get_record("trend_report", "latest:day")
    store.close()
    assert latest is not None and latest["posts"] == 0 and Path(latest["path"]).is_file()


def test_an_unknown_period_fails_the_run(deployment_env: dict[str, str]) -> None:
    state = trend_report(period="week", return_state=True)
    assert state.is_failed()
    assert "unknown period 'week'" in state.message

"""The store methods the dashboards add, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from classifiers.triager import Triager
from pipeline.store.interface import Store
from tests.helpers import make_post

START = datetime(2026, 11, 1, tzinfo=UTC)


def test_posts_between_is_a_half_open_time_window(store: Store, triager: Triager) -> None:
    store.write_batch(triager.triage([make_post(i) for i in range(30)], START))
    # make_post(i) is created at START + i seconds.
    docs = store.posts_between(START + timedelta(seconds=10), START + timedelta(seconds=20))
    assert [d["_id"] for d in docs] == [f"test:{i}" for i in range(10, 20)]
    assert all("raw" not in d["post"] and d["topic_label"] for d in docs)
    assert len(store.posts_between(START, START + timedelta(hours=1), limit=7)) == 7
    assert store.posts_between(START - timedelta(hours=1), START) == []

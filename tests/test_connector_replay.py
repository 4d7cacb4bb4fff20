"""The replay connector: JSONL and twcs.csv files, dead letters, and resuming after a stop."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.replay import ReplayConnector
from pipeline.bus.memory import InProcessBus
from pipeline.errors import ConfigError
from pipeline.records import DeadLetter, Post
from pipeline.store.embedded import EmbeddedStore
from tests.helpers import post_bytes

TWCS = [
    "tweet_id",
    "author_id",
    "inbound",
    "created_at",
    "text",
    "response_tweet_id",
    "in_response_to_tweet_id",
]


def test_twcs_layout_keeps_inbound_tweets_and_dead_letters_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "twcs.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(TWCS)
        writer.writerow(
            [
                "1",
                "115712",
                "True",
                "Tue Oct 31 22:10:47 +0000 2017",
                "@sprintcare and how do you propose we do that",
                "",
                "3",
            ]
        )
        writer.writerow(
            [
                "2",
                "sprintcare",
                "False",
                "Tue Oct 31 22:11:45 +0000 2017",
                "@115712 I understand. DM us",
                "1",
                "",
            ]
        )
        writer.writerow(["3", "115713", "True", "yesterday-ish", "my phone is dead", "", ""])
    bus = InProcessBus()
    replay = ReplayConnector(bus.producer(), path)
    replay.start()
    [post] = [Post.model_validate_json(m.value) for m in bus.read_all("posts.raw")]
    assert post.id == "twitter:1" and post.in_reply_to == "3"
    assert post.created_at.isoformat() == "2017-10-31T22:10:47+00:00"
    [letter] = [DeadLetter.model_validate_json(m.value) for m in bus.read_all("posts.dlq")]
    assert "twcs.csv:4" in letter.reason


def test_a_stopped_replay_resumes_without_gap_or_repeat(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"\n".join(post_bytes(i) for i in range(100)) + b"\n")
    store = EmbeddedStore(tmp_path / "s.sqlite3")
    store.ensure_schema()
    bus = InProcessBus()
    first = ReplayConnector(bus.producer(), path, limit=37, store=store, checkpoint_every=10)
    first.start()
    second = ReplayConnector(bus.producer(), path, store=store, checkpoint_every=10)
    second.start()
    ids = [Post.model_validate_json(m.value).id for m in bus.read_all("posts.raw")]
    assert len(ids) == 100 and sorted(ids) == sorted(f"test:{i}" for i in range(100))
    assert (first.sent, second.sent) == (37, 63)


def test_missing_columns_and_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,words\n1,hello\n")
    with pytest.raises(ConfigError, match="lacks the columns"):
        ReplayConnector(InProcessBus().producer(), bad).start()
    with pytest.raises(ConfigError, match="does not exist"):
        ReplayConnector(InProcessBus().producer(), tmp_path / "none.jsonl").start()


def test_shift_to_now_moves_the_newest_post_to_now_and_keeps_the_spacing(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"\n".join(post_bytes(i) for i in range(0, 300, 60)) + b"\n")  # 4 minutes
    bus = InProcessBus()
    before = datetime.now(UTC)
    ReplayConnector(bus.producer(), path, shift_to_now=True).start()
    times = [Post.model_validate_json(m.value).created_at for m in bus.read_all("posts.raw")]
    assert [round((t - times[0]).total_seconds()) for t in times] == [0, 60, 120, 180, 240]
    assert before <= times[-1] <= datetime.now(UTC)
    untouched = InProcessBus()
    ReplayConnector(untouched.producer(), path).start()
    [first, *_] = [Post.model_validate_json(m.value) for m in untouched.read_all("posts.raw")]
    assert first.created_at == datetime(2026, 11, 1, tzinfo=UTC)

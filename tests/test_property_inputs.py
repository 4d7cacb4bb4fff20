"""No input crashes a parser: the ``Post`` schema, replay files (JSONL and twcs.csv) and Reddit
things are each accepted or refused with a reason (X and the webhook: test_connector_parsers)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import praw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.reddit import RedditConnector
from connectors.replay import ReplayConnector
from pipeline.bus.memory import InProcessBus
from pipeline.records import DeadLetter, Post, validation_reason
from tests.helpers import post_bytes
from tests.test_connector_parsers import json_values

FIELDS = ("source", "native_id", "author", "text", "created_at", "language", "url", "raw")
posts_ish = st.fixed_dictionaries(
    {},
    optional={
        **{name: json_values for name in FIELDS},
        "author": st.fixed_dictionaries(
            {}, optional={"id": json_values, "followers": json_values, "handle": json_values}
        ),
        "source": st.from_regex(r"[a-z][a-z0-9_-]{0,40}", fullmatch=True) | json_values,
        "native_id": st.text(max_size=20) | json_values,
        "text": st.text(max_size=50) | json_values,
        "created_at": st.datetimes().map(str) | st.text(max_size=30) | json_values,
    },
)
slow = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@slow
@given(payload=posts_ish | json_values | st.binary(max_size=200).map(lambda b: b))
def test_any_payload_is_a_post_or_a_clear_refusal(payload: Any) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    try:
        post = Post.model_validate_json(raw)
    except ValidationError as exc:
        reason = validation_reason(exc)
        assert reason.startswith("invalid post: ") and len(reason) > len("invalid post: ")
        return
    assert post.id == f"{post.source}:{post.native_id}"
    assert Post.model_validate_json(post.model_dump_json()) == post  # it survives the bus


def run_replay(path: Path) -> tuple[int, int, list[DeadLetter]]:
    bus = InProcessBus()
    replay = ReplayConnector(bus.producer(), path)
    replay.start()
    letters = [DeadLetter.model_validate_json(m.value) for m in bus.read_all("posts.dlq")]
    return replay.sent, replay.rejected, letters


@slow
@given(lines=st.lists(st.binary(max_size=80) | st.integers(0, 50).map(post_bytes), max_size=8))
def test_any_jsonl_line_is_replayed_or_dead_lettered(
    lines: list[bytes], tmp_path_factory: Any
) -> None:
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    path = Path(tmp_path_factory.mktemp("replay")) / "posts.jsonl"
    path.write_bytes(b"\n".join(lines))
    sent, rejected, letters = run_replay(path)
    assert sent + rejected == sum(bool(line.strip()) for line in lines)
    assert all(f"{path.name}:" in d.reason for d in letters)


TWCS_FIELDS = (
    "tweet_id", "author_id", "inbound", "created_at", "text", "response_tweet_id",
    "in_response_to_tweet_id",
)
twcs_rows = st.fixed_dictionaries(
    {
        "tweet_id": st.text(max_size=12),
        "author_id": st.text(max_size=12),
        "inbound": st.sampled_from(["True", "False", "true", "", "maybe"]),
        "created_at": st.sampled_from(["Tue Oct 31 22:10:47 +0000 2017", ""])
        | st.text(max_size=30),
        "text": st.text(max_size=60),
        "response_tweet_id": st.text(max_size=5),
        "in_response_to_tweet_id": st.text(max_size=5),
    }
)


@slow
@given(rows=st.lists(twcs_rows, max_size=6))
def test_any_twcs_row_is_replayed_or_dead_lettered(
    rows: list[dict[str, str]], tmp_path_factory: Any
) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TWCS_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    path = Path(tmp_path_factory.mktemp("twcs")) / "twcs.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", errors="surrogatepass")
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        inbound = sum(r["inbound"].lower() == "true" for r in csv.DictReader(f))
    sent, rejected, letters = run_replay(path)
    assert sent + rejected == inbound
    assert all(d.reason for d in letters)


things = st.builds(
    SimpleNamespace,
    fullname=st.sampled_from(["t3_abc", "t1_zz9", "t3_", "x_!!", ""]) | st.text(max_size=8),
    title=json_values,
    selftext=json_values,
    body=json_values,
    link_id=json_values,
    parent_id=json_values,
    author=json_values,
    created_utc=json_values | st.floats(allow_nan=True),
    permalink=json_values,
    subreddit=json_values,
)


@slow
@given(thing=things, kind=st.sampled_from(["submissions", "comments"]))
def test_any_reddit_thing_is_a_post_or_a_dead_letter(thing: SimpleNamespace, kind: str) -> None:
    client = praw.Reddit(client_id="id", client_secret="secret", user_agent="triage tests")
    reddit = RedditConnector(InProcessBus().producer(), client, ["acme"], store=None)
    reddit._take(kind, thing)
    assert reddit.sent + reddit.rejected == 1

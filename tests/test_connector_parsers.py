"""No payload crashes a connector: every tweet or pushed body is either a post or a dead letter."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.webhook import WebhookConnector, sign
from connectors.x import XConnector
from pipeline.bus.memory import InProcessBus
from pipeline.store.embedded import EmbeddedStore
from tests.test_connector_x import client

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
tweets = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=20), st.integers(min_value=0, max_value=2**62)),
        "text": json_values,
        "author_id": json_values,
        "created_at": json_values,
        "lang": json_values,
        "referenced_tweets": json_values,
        "conversation_id": json_values,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tweet=tweets, users=st.dictionaries(st.text(max_size=5), json_values, max_size=2))
def test_any_tweet_is_a_post_or_a_dead_letter(
    tweet: dict[str, Any], users: dict[str, Any], tmp_path_factory: Any
) -> None:
    store = EmbeddedStore(Path(tmp_path_factory.mktemp("x")) / "s.sqlite3")
    store.ensure_schema()
    x = XConnector(InProcessBus().producer(), client(), "q", store)
    x._take(tweet, {k: v for k, v in users.items() if isinstance(v, dict)})
    assert x.sent + x.rejected == 1


hook = WebhookConnector(
    InProcessBus().producer(), "s3cret-s3cret-s3cret", rate_limit="1000000/second"
)
web = TestClient(hook.app())


@settings(max_examples=150, deadline=None)
@given(body=json_values | st.binary(max_size=64))
def test_any_signed_body_gets_a_clear_answer(body: Any) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = str(int(time.time()))
    response = web.post(
        "/webhook/posts",
        content=raw,
        headers={
            "X-Triage-Timestamp": stamp,
            "X-Triage-Signature": sign("s3cret-s3cret-s3cret", stamp, raw),
        },
    )
    assert response.status_code in (202, 422)
    if response.status_code == 422:
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]

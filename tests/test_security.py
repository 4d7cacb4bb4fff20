"""Personal data and secrets stay out of logs and out of what marketing sees; the webhook sheds
floods with 429 and Retry-After."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from classifiers.triager import Triager
from connectors.webhook import WebhookConnector, sign
from dashboards.api import create_app
from dashboards.auth import make_account
from pipeline import log_redaction
from pipeline.bus.memory import InProcessBus
from pipeline.cli import main as cli
from pipeline.records import Post, TriagedPost
from pipeline.store.embedded import EmbeddedStore
from pipeline.worker import Worker
from tests.helpers import embedded_settings, post_bytes

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PII = {
    "email": "ann.lee+orders@example.co.uk",
    "phone": "+44 7700 900123",
    "card": "4111 1111 1111 1111",
}
# A customer's words (not an SMS advert's "call ... now", which the spam head rightly flags)
TEXT = (
    f"My order never arrived and I want a refund to card {PII['card']}. "
    f"I am {PII['email']}, my number is {PII['phone']}"
)
SECRET = "wh-s3cret-do-not-log-9f8e7d"


def assert_no_pii(text: str) -> None:
    for kind, value in PII.items():
        assert value not in text, f"{kind} leaked: {value}"


class LeakyTriager(Triager):
    """The real triager, with a stage that fails quoting the customer's words, as bugs do."""

    def triage(self, posts: Sequence[Post], now: datetime) -> list[TriagedPost]:
        for p in posts:
            if "refund to card" in p.text:
                raise ValueError(f"cannot parse {p.text!r}")
        return super().triage(posts, now)


def test_logs_of_a_worker_hold_no_pii(
    tmp_path: Path, triager: Triager, caplog: pytest.LogCaptureFixture
) -> None:
    log_redaction.install()
    settings = embedded_settings(data_dir=tmp_path, pause_s=0)
    bus = InProcessBus()
    bus.ensure_topics(["posts.raw"])
    producer = bus.producer()
    producer.send("posts.raw", post_bytes(1, text=TEXT))
    producer.send("posts.raw", post_bytes(2))
    store = EmbeddedStore(settings.embedded_db)
    store.ensure_schema()
    caplog.set_level(logging.INFO)
    Worker(bus, store, LeakyTriager(triager.model, triager.version), settings).run(
        threading.Event(), idle_exit_s=0.3
    )
    assert "dead-lettering test:1" in caplog.text  # the stage's failure was logged...
    assert_no_pii(caplog.text)  # ...without the customer's details
    assert "[EMAIL]" in caplog.text and "[CARD]" in caplog.text


def test_exception_text_in_logs_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    log_redaction.install()
    try:
        raise RuntimeError(f"write failed for {PII['email']}")
    except RuntimeError:
        logging.getLogger("pipeline.test").exception("store said %s", PII["phone"])
    assert_no_pii(caplog.text)


def test_the_cli_entry_point_keeps_configured_secrets_out_of_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TRIAGE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("TRIAGE_MONGO_URI", "mongodb://triage:p4ssw0rd-xyz@db.internal:27017/")
    cfg = cli.settings()  # what every command calls first
    assert SECRET not in repr(cfg) and "p4ssw0rd-xyz" not in repr(cfg)
    log = logging.getLogger("connectors.test")
    log.warning("connecting with %s", cfg.webhook_secret.get_secret_value())  # type: ignore[union-attr]
    log.warning("bad uri mongodb://triage:p4ssw0rd-xyz@elsewhere:27017/")
    assert SECRET not in caplog.text and "p4ssw0rd-xyz" not in caplog.text
    assert caplog.text.count(log_redaction.SECRET) == 2


@settings(max_examples=80, deadline=None)
@given(
    user=st.from_regex(r"[a-z][a-z0-9._]{0,10}", fullmatch=True),
    domain=st.from_regex(r"[a-z]{2,10}\.(com|org|co\.uk|de)", fullmatch=True),
    phone=st.from_regex(r"\+?[1-9][0-9]{0,2} ?[0-9]{3,4}[ -]?[0-9]{3,4}", fullmatch=True),
    noise=st.text(alphabet=st.characters(categories=["L", "Zs"]), max_size=20),
)
def test_marketing_never_sees_generated_emails_or_phones(
    triager: Triager, user: str, domain: str, phone: str, noise: str
) -> None:
    email = f"{user}@{domain}"
    post = Post.model_validate_json(post_bytes(7, text=f"{noise} mail {email} or ring {phone} !"))
    [triaged] = triager.triage([post], NOW)
    assert email not in triaged.redacted_text
    if sum(ch.isdigit() for ch in phone) >= 7:
        assert phone not in triaged.redacted_text


def test_marketing_and_the_api_show_redacted_text_only(tmp_path: Path, triager: Triager) -> None:
    store = EmbeddedStore(tmp_path / "s.sqlite3")
    store.ensure_schema()
    posts = [Post.model_validate_json(post_bytes(i, text=TEXT + f" #{i}")) for i in range(3)]
    store.write_batch(triager.triage(posts, NOW))
    password = "correct horse battery"
    store.save_user(make_account("mia", password, ["marketing"]))
    store.save_user(make_account("ann", password, ["agent"]))
    marketing = TestClient(create_app(store))
    assert marketing.post("/api/v1/login", json={"name": "mia", "password": password}).is_success
    topic = store.list_queue("open", 1)[0].topic  # drill down to the posts of that topic
    page = marketing.get(
        "/marketing", params={"hours": 48, "until": "2026-11-02T00:00:00Z", "topic": topic}
    )
    assert page.status_code == 200
    assert_no_pii(page.text)
    assert "[EMAIL]" in page.text  # the posts are on the page, redacted
    agent = TestClient(create_app(store))
    assert agent.post("/api/v1/login", json={"name": "ann", "password": password}).is_success
    for route in ("/api/v1/queue", "/api/v1/status", "/api/v1/health"):
        response = agent.get(route)
        assert response.status_code == 200
        assert_no_pii(response.text)
    assert "[EMAIL]" in agent.get("/api/v1/queue").text


def test_webhook_floods_get_429_with_retry_after() -> None:
    secret = "s3cret-s3cret-s3cret"
    hook = WebhookConnector(InProcessBus().producer(), secret, rate_limit="5/second")
    web = TestClient(hook.app())
    body = post_bytes(1)

    def send() -> int:
        stamp = str(int(time.time()))
        headers = {"X-Triage-Timestamp": stamp, "X-Triage-Signature": sign(secret, stamp, body)}
        response = web.post("/webhook/posts", content=body, headers=headers)
        if response.status_code == 429:
            assert 1 <= int(response.headers["Retry-After"]) <= 1
            assert "retry in" in response.json()["detail"]
        return response.status_code

    codes = [send() for _ in range(12)]
    assert codes[:5] == [202] * 5 and set(codes[5:]) == {429}
    unsigned = web.post("/webhook/posts", content=body)  # refused before its signature is read
    assert unsigned.status_code == 429
    time.sleep(1.1)
    assert send() == 202  # the window moved on


def test_a_bad_rate_limit_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="rate limit 'lots'"):
        WebhookConnector(InProcessBus().producer(), "s3cret-s3cret-s3cret", rate_limit="lots")

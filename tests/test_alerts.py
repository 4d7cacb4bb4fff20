"""Alerts reach people: spikes on the real Kafka topic become e-mail (aiosmtpd, STARTTLS and
login) and Slack-style webhook posts (a local HTTP receiver), each once, with rate limits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from pipeline.bus.kafka import KafkaBus
from pipeline.settings import Settings
from pipeline.store.embedded import EmbeddedStore
from pipeline.trends.alerts import Notifier, channels_from_settings, sample_alert
from pipeline.trends.detector import SamplePost, Trend
from tests.helpers import wait_for
from tests.servers import SMTP_PASSWORD, SMTP_USER, Inbox, Recorder

pytestmark = [pytest.mark.kafka]

START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def trend(tid: str, peak: int, status: str = "emerging") -> Trend:
    return Trend(
        id=tid,
        what=f"term={tid}",
        kind="term",
        started_at=START,
        detected_at=START + timedelta(minutes=3),
        updated_at=START + timedelta(minutes=5),
        growth=5.0,
        volume=peak,
        peak_volume=peak,
        expected=2.0,
        p_value=1e-6,
        sample_posts=[
            SamplePost(id="x:1", text=f"the {tid} is down", author="a", sentiment="negative")
        ],
        sentiment_mix={"negative": peak},
        top_authors=[],
        status=status,  # type: ignore[arg-type]
        detector="poisson/15m",
    )


class Clock:
    def __init__(self) -> None:
        self.now = START + timedelta(minutes=6)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def setup(
    kafka_bootstrap: str, unique: str, inbox: Inbox, provider: Recorder, tmp_path: Path
) -> Iterator[tuple[Settings, KafkaBus, EmbeddedStore]]:
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_alerts=f"alerts.{unique}",
        alerts_group=f"alerts.{unique}",
        alerts_email_to=["marketing@acme.example", "care-leads@acme.example"],
        alerts_webhook_url=SecretStr(f"{provider.url}/hook/T000/B000/secret"),
        alerts_per_hour=2,
        alerts_trend_interval_minutes=15,
        public_url="https://triage.acme.example",
        smtp_host=inbox.host,
        smtp_port=inbox.port,
        smtp_username=SMTP_USER,
        smtp_password=SecretStr(SMTP_PASSWORD),
        smtp_ca_file=inbox.ca_file,
        smtp_from="triage@acme.example",
        pause_s=0.2,
    )
    provider.answers["/hook/"] = (200, {})
    store = EmbeddedStore(tmp_path / "store.sqlite3")
    store.ensure_schema()
    bus = KafkaBus(kafka_bootstrap, partitions=2)
    yield settings, bus, store
    store.close()


def publish(bus: KafkaBus, settings: Settings, *values: Trend | bytes) -> None:
    producer = bus.producer()
    for v in values:
        if isinstance(v, Trend):
            producer.send(settings.topic_alerts, v.model_dump_json().encode(), key=v.id.encode())
        else:
            producer.send(settings.topic_alerts, v, key=b"x")
    producer.flush()
    producer.close()


def drain(notifier: Notifier) -> Any:
    return notifier.run(threading.Event(), idle_exit_s=3)


def subjects(inbox: Inbox) -> list[str]:
    return [str(m["Subject"]) for m in inbox.messages]


def test_each_new_or_grown_spike_is_told_once_by_mail_and_webhook(
    setup: tuple[Settings, KafkaBus, EmbeddedStore], inbox: Inbox, provider: Recorder
) -> None:
    settings, bus, store = setup
    clock = Clock()
    bus.ensure_topics([settings.topic_alerts])
    publish(
        bus,
        settings,
        trend("app", 10),
        trend("app", 12),  # the same spike, a little bigger: told once, at its newest
        trend("refund", 8),
        trend("login", 9),  # a third in the hour: over alerts_per_hour=2, held back
        trend("gone", 50, status="ended"),  # ended before anyone was told: not worth telling
        b"not a trend",
    )
    notifier = Notifier(bus, store, settings, channels_from_settings(settings), clock=clock)
    totals = drain(notifier)
    assert (totals.sent, totals.held_back, totals.unreadable) == (2, 1, 1)
    assert sorted(subjects(inbox)) == sorted(["Spike: term=app", "Spike: term=refund"] * 2)
    assert sorted(r for rs in inbox.recipients for r in rs) == sorted(
        ["marketing@acme.example", "care-leads@acme.example"] * 2
    )
    body = inbox.messages[0].get_payload(decode=True).decode()
    assert "https://triage.acme.example/marketing?since=" in body
    assert "https://triage.acme.example/api/v1/incidents/incident%3A" in body
    hooks = [r for r in provider.requests if r.path.startswith("/hook/")]
    assert len(hooks) == 2
    slack = hooks[0].json()
    assert slack["text"].startswith("Spike: term=") and slack["blocks"][0]["type"] == "section"
    marketing, incident = (e["url"] for e in slack["blocks"][-1]["elements"])
    assert marketing.startswith("https://triage.acme.example/marketing?since=2026-12-04T08%3A00")
    assert incident.startswith("https://triage.acme.example/api/v1/incidents/incident%3A")

    # grown to 2.5x what people were told, but within the trend's 15 minutes: not yet
    clock.now += timedelta(minutes=5)
    publish(bus, settings, trend("app", 25))
    assert drain(notifier).sent == 0
    # an hour later it has grown again; the held-back spike is told when it comes by again
    clock.now += timedelta(minutes=61)
    publish(bus, settings, trend("app", 26), trend("login", 9))
    assert drain(notifier).sent == 2
    assert "Spike grew: term=app (12 -> 26)" in subjects(inbox)
    assert subjects(inbox).count("Spike: term=login") == 2
    notifier.close()

    # a restarted notifier (same group, same store) told about all of it again tells nothing
    sent_before = (len(inbox.messages), len(provider.requests))
    publish(bus, settings, trend("app", 26), trend("refund", 8), trend("login", 9))
    again = Notifier(bus, store, settings, channels_from_settings(settings), clock=clock)
    try:
        assert drain(again).sent == 0
    finally:
        again.close()
    assert (len(inbox.messages), len(provider.requests)) == sent_before


def test_a_failing_webhook_is_retried_without_mailing_twice(
    setup: tuple[Settings, KafkaBus, EmbeddedStore], inbox: Inbox, provider: Recorder
) -> None:
    settings, bus, store = setup
    provider.answers["/hook/"] = (500, {"error": "down"})
    bus.ensure_topics([settings.topic_alerts])
    publish(bus, settings, trend("checkout", 11))
    notifier = Notifier(bus, store, settings, channels_from_settings(settings), clock=Clock())
    stop = threading.Event()
    running = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    running.start()
    try:
        wait_for(lambda: len(provider.requests) >= 2, 60, "the webhook tried twice")
        provider.answers["/hook/"] = (200, {})
        wait_for(
            lambda: len(store.find_records("alert_sent")) == 2,
            60,
            "the alert recorded as sent on both channels",
        )
    finally:
        stop.set()
        running.join(30)
        notifier.close()
    assert subjects(inbox) == ["Spike: term=checkout"] * 2  # once per recipient, not per try


def test_alerts_test_sends_a_sample_through_every_channel(
    setup: tuple[Settings, KafkaBus, EmbeddedStore], inbox: Inbox, provider: Recorder
) -> None:
    settings, _, _ = setup
    for channel in channels_from_settings(settings):
        channel.deliver(sample_alert(settings))
    assert subjects(inbox) == ["Spike: TEST: term=outage"] * 2
    assert provider.requests[-1].json()["text"].startswith("Spike: TEST")


def test_no_channel_is_a_one_line_error() -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="no alert channel"):
        channels_from_settings(Settings())
    with pytest.raises(ConfigError, match="TRIAGE_SMTP_HOST"):
        channels_from_settings(Settings(alerts_email_to=["a@b.example"]))

"""The alerts notifier: a spike on ``trends.alerts`` reaches people, by e-mail and by webhook.

Workers publish a trend when it is detected and again whenever it changes (status, or its
15-minute refresh). The notifier reads that topic in its own consumer group and tells people
about a spike once when it is new, and once more each time it has grown to ``alerts_growth``
times the peak they were last told about, never more often than once per
``alerts_trend_interval_minutes`` for one trend and never more than ``alerts_per_hour`` in all
(what is held back is logged, counted and told later if it grows again). What was sent is
recorded per trend and channel in the store before the offsets are committed, so a restart or a
failed channel re-sends nothing that already went out; a channel that fails is retried with the
batch, the other is not told twice.

E-mail goes through the same SMTP relay as escalations; the webhook gets the JSON of Slack's
incoming webhooks (``text`` plus ``blocks``), which Mattermost, Rocket.Chat and Teams'
Slack-compatible connectors accept too. Each alert links to the marketing page around the spike
and to its incident.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import httpx
from pydantic import SecretStr, ValidationError

from pipeline.bus.idle import IdleClock
from pipeline.bus.interface import Bus, Message
from pipeline.errors import ConfigError, TransientError
from pipeline.outbound.channels import Mailer, mailer_from_settings
from pipeline.records import utcnow
from pipeline.settings import Settings
from pipeline.store.interface import Store
from pipeline.trends.detector import SamplePost, Trend

log = logging.getLogger(__name__)
SENT = "alert_sent"  # store record kind: what each trend's last alert on a channel said
HTTP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Alert:
    """What one spike's notification says, the same on every channel."""

    trend: Trend
    grown_from: int | None  # the peak people were last told about; None: a new spike
    marketing_url: str
    incident_url: str

    @property
    def subject(self) -> str:
        if self.grown_from is None:
            return f"Spike: {self.trend.what}"
        return f"Spike grew: {self.trend.what} ({self.grown_from} -> {self.trend.peak_volume})"

    def body(self) -> str:
        t = self.trend
        mood = ", ".join(f"{k} {v}" for k, v in sorted(t.sentiment_mix.items())) or "none"
        lines = [
            self.subject,
            "",
            f"{t.volume} posts in the last 15 minutes ({t.growth:g}x the expected "
            f"{t.expected:.1f}); peak {t.peak_volume}; {t.status}.",
            f"Started {t.started_at:%Y-%m-%d %H:%M} UTC, detected {t.detected_at:%H:%M} UTC "
            f"by {t.detector}.",
            f"Sentiment: {mood}.",
        ]
        if t.related:
            lines.append(f"Related: {', '.join(t.related[:8])}.")
        lines += ["", "What people say:"]
        lines += [f"  - {p.text[:200]}" for p in t.sample_posts[:3]]
        lines += ["", f"Marketing: {self.marketing_url}", f"Incident: {self.incident_url}"]
        return "\n".join(lines)

    def slack(self) -> dict[str, Any]:
        t = self.trend
        summary = (
            f"*{self.subject}*\n{t.volume} posts in 15 min ({t.growth:g}x expected), "
            f"peak {t.peak_volume}, {t.status}"
        )
        samples = "\n".join(f"> {p.text[:200]}" for p in t.sample_posts[:3])
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": summary}}
        ]
        if samples:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": samples}})
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Marketing"},
                     "url": self.marketing_url},
                    {"type": "button", "text": {"type": "plain_text", "text": "Incident"},
                     "url": self.incident_url},
                ],
            }
        )
        text = f"{self.subject}: <{self.marketing_url}|marketing> <{self.incident_url}|incident>"
        return {"text": text, "blocks": blocks}


class Channel(Protocol):
    name: str

    def deliver(self, alert: Alert) -> None:
        """Send it; raise TransientError if it did not go out."""


class EmailChannel:
    name = "email"

    def __init__(self, mailer: Mailer, recipients: Sequence[str]) -> None:
        self.mailer, self.recipients = mailer, list(recipients)

    def deliver(self, alert: Alert) -> None:
        body = alert.body()
        for to in self.recipients:
            self.mailer.send(to, alert.subject, body)


class WebhookChannel:
    """Slack's incoming-webhook JSON, POSTed; any 2xx is delivered."""

    name = "webhook"

    def __init__(self, url: SecretStr, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        self.url, self.timeout_s = url, timeout_s

    def deliver(self, alert: Alert) -> None:
        try:
            answer = httpx.post(
                self.url.get_secret_value(), json=alert.slack(), timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"alert webhook failed: {type(exc).__name__}") from exc
        if answer.status_code >= 300:
            # the URL is a secret (Slack's carries the token): never in a message
            raise TransientError(f"alert webhook answered {answer.status_code}")


def channels_from_settings(settings: Settings) -> list[Channel]:
    """The configured channels; a one-line ConfigError if there is none to send through."""
    out: list[Channel] = []
    if settings.alerts_email_to:
        mailer = mailer_from_settings(settings)
        if mailer is None:
            raise ConfigError("TRIAGE_ALERTS_EMAIL_TO is set but TRIAGE_SMTP_HOST is not")
        out.append(EmailChannel(mailer, settings.alerts_email_to))
    if settings.alerts_webhook_url is not None:
        out.append(WebhookChannel(settings.alerts_webhook_url))
    if not out:
        raise ConfigError(
            "no alert channel: set TRIAGE_ALERTS_EMAIL_TO (with TRIAGE_SMTP_HOST) "
            "or TRIAGE_ALERTS_WEBHOOK_URL"
        )
    return out


def links(settings: Settings, trend: Trend) -> tuple[str, str]:
    """The marketing page around the spike, and the spike's incident."""
    base = settings.public_url.rstrip("/")
    since = (trend.started_at - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    marketing = f"{base}/marketing?{urlencode({'since': since})}"
    incident = f"{base}/api/v1/incidents/{quote('incident:' + trend.id, safe='')}"
    return marketing, incident


def sample_alert(settings: Settings) -> Alert:
    """What ``triage alerts test`` sends: a made-up spike, marked as a test."""
    now = utcnow()
    trend = Trend(
        id="test-alert",
        what="TEST: term=outage",
        kind="term",
        started_at=now - timedelta(minutes=20),
        detected_at=now - timedelta(minutes=5),
        updated_at=now,
        growth=6.0,
        volume=42,
        peak_volume=42,
        expected=7.0,
        p_value=1e-9,
        sample_posts=[
            SamplePost(id="test:1", text="This is a test alert from triage alerts test.",
                       author="test", sentiment="neutral")
        ],
        sentiment_mix={"negative": 30, "neutral": 12},
        top_authors=[],
        status="emerging",
        detector="test",
    )
    marketing, incident = links(settings, trend)
    return Alert(trend, None, marketing, incident)


@dataclass
class NotifierStats:
    read: int = 0
    sent: int = 0
    unchanged: int = 0  # already told, not grown enough, or ended
    held_back: int = 0  # over a rate limit
    unreadable: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)


class Notifier:
    def __init__(
        self,
        bus: Bus,
        store: Store,
        settings: Settings,
        channels: Sequence[Channel],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store, self.settings, self.channels, self.clock = store, settings, channels, clock
        bus.ensure_topics([settings.topic_alerts])
        self.consumer = bus.consumer(settings.alerts_group, [settings.topic_alerts])
        self._sent_times: deque[datetime] = deque()  # the last hour's alerts, for the rate limit

    def process(self, messages: Sequence[Message]) -> NotifierStats:
        stats = NotifierStats(read=len(messages))
        latest: dict[str, Trend] = {}  # only the newest state of each trend in a batch matters
        for m in messages:
            try:
                trend = Trend.model_validate_json(m.value or b"")
            except ValidationError:
                stats.unreadable += 1
                log.warning("alerts: %s[%d]@%d is not a trend", m.topic, m.partition, m.offset)
                continue
            latest[trend.id] = trend
        for trend in latest.values():
            self._consider(trend, stats)
        self.consumer.commit(messages)
        return stats

    def _consider(self, trend: Trend, stats: NotifierStats) -> None:
        now = self.clock()
        cfg = self.settings
        due: list[tuple[Channel, int | None]] = []
        for channel in self.channels:
            last = self.store.get_record(SENT, f"{trend.id}|{channel.name}")
            if last is None:
                if trend.status != "ended":
                    due.append((channel, None))
                continue
            told, at = int(last["peak_volume"]), datetime.fromisoformat(last["at"])
            grown = trend.peak_volume >= told * cfg.alerts_growth and trend.status != "ended"
            if grown and now - at >= timedelta(minutes=cfg.alerts_trend_interval_minutes):
                due.append((channel, told))
            elif grown:
                stats.held_back += 1
        if not due:
            stats.unchanged += 1
            return
        while self._sent_times and now - self._sent_times[0] > timedelta(hours=1):
            self._sent_times.popleft()
        if len(self._sent_times) >= cfg.alerts_per_hour:
            stats.held_back += 1
            log.warning(
                "alerts: %s held back: %d alerts in the last hour (TRIAGE_ALERTS_PER_HOUR)",
                trend.what,
                len(self._sent_times),
            )
            return
        marketing, incident = links(cfg, trend)
        for channel, grown_from in due:
            alert = Alert(trend, grown_from, marketing, incident)
            channel.deliver(alert)  # TransientError: the batch is read again, this is re-sent
            self.store.put_record(
                SENT,
                f"{trend.id}|{channel.name}",
                {"peak_volume": trend.peak_volume, "at": now.isoformat(), "what": trend.what},
            )
            stats.by_channel[channel.name] = stats.by_channel.get(channel.name, 0) + 1
            log.info("alert sent by %s: %s", channel.name, alert.subject)
        self._sent_times.append(now)
        stats.sent += 1

    def run(self, stop: threading.Event, idle_exit_s: float | None = None) -> NotifierStats:
        """Notify until ``stop`` is set, or until nothing arrived for ``idle_exit_s`` while the
        group had settled this notifier's share of the partitions (``IdleClock``)."""
        totals = NotifierStats()
        idle = IdleClock(self.consumer)
        while not stop.is_set():
            batch: list[Message] = []
            try:
                batch = self.consumer.poll(100, timeout_s=0.5)
                if not batch:
                    if idle_exit_s is not None and idle.idle_s() > idle_exit_s:
                        break
                    continue
                stats = self.process(batch)
            except TransientError as exc:
                log.error("alerts not sent (%s); trying again in %.0fs", exc, self.settings.pause_s)
                if batch:
                    self.consumer.rewind(batch)
                stop.wait(self.settings.pause_s)
                continue
            idle.busy()
            for name in ("read", "sent", "unchanged", "held_back", "unreadable"):
                setattr(totals, name, getattr(totals, name) + getattr(stats, name))
            for name, n in stats.by_channel.items():
                totals.by_channel[name] = totals.by_channel.get(name, 0) + n
        return totals

    def close(self) -> None:
        self.consumer.close()

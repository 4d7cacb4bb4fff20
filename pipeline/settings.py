"""One frozen settings object, read from ``TRIAGE_*`` environment variables at the entry point.

With nothing set, everything runs embedded: an in-process bus and a SQLite store under
``TRIAGE_DATA_DIR``. Setting ``TRIAGE_KAFKA_BOOTSTRAP`` and ``TRIAGE_MONGO_URI`` switches to the
real services.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", frozen=True, extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None, description="host:port[,host:port]; unset means the in-process bus"
    )
    mongo_uri: SecretStr | None = Field(
        default=None, description="mongodb:// URI; unset means the embedded SQLite store"
    )
    mongo_database: str = "triage"
    data_dir: Path = Path(".triage")
    cache: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "social-triage",
        description="downloads kept between installs (word vectors; the test services' builds)",
    )
    models_dir: Path | None = Field(
        default=None, description="model registry; unset means the models shipped in the package"
    )
    products_file: Path | None = Field(
        default=None,
        description="the brand's product names, one a line, found as entities; unset means none",
    )

    topic_raw: str = "posts.raw"
    topic_triaged: str = "posts.triaged"
    topic_dlq: str = "posts.dlq"
    topic_alerts: str = "trends.alerts"
    topic_spam: str = Field(
        default="posts.spam", description="triaged spam: for consumers that ask for it"
    )
    triaged_raw: bool = Field(
        default=False,
        description="publish the post's own text and raw payload on posts.triaged (PII!)",
    )
    partitions: int = Field(default=2, ge=1)
    kafka_replication_factor: int | None = Field(
        default=None, ge=1, description="for the topics the pipeline creates; unset: the broker's"
    )
    kafka_min_insync_replicas: int | None = Field(
        default=None, ge=1, description="for the topics the pipeline creates; unset: the broker's"
    )
    consumer_group: str = "triage-workers"
    # kafka-python logs every refused connection at ERROR; the worker reports what matters once.
    # Raise it (WARNING, INFO) to see the client's own account of a rebalance or an outage.
    kafka_log_level: str = Field(
        default="CRITICAL", pattern="^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$"
    )
    log_format: str = Field(
        default="text", pattern="^(text|json)$", description="json: one object a line"
    )
    # seconds of empty polls before a worker checks that it is not left reading nothing
    kafka_stall_s: float = Field(default=20.0, gt=0)
    # posts.triaged exactly once for read_committed consumers (docs/kafka.md): a batch's records
    # and its offsets commit in one Kafka transaction
    kafka_transactions: bool = Field(
        default=False, description="publish each batch and commit its offsets in one transaction"
    )
    kafka_transactional_id: str | None = Field(
        default=None,
        description="stable per worker replica (e.g. the pod name); unset: group-host-pid",
    )

    webhook_secret: SecretStr | None = None
    reddit_client_id: SecretStr | None = None
    reddit_client_secret: SecretStr | None = None
    reddit_username: SecretStr | None = None
    reddit_password: SecretStr | None = None
    reddit_user_agent: str = "social-triage/0.1 (customer care listening)"
    bluesky_jetstream_url: str = "wss://jetstream2.us-east.bsky.network/subscribe"
    bluesky_handle: str | None = None  # the brand's account, which replies
    # where the brand's account logs in to reply: bsky.social (Bluesky's entryway, which hands
    # the client on to the account's host) for accounts made on Bluesky, else their own PDS
    bluesky_pds_url: str = "https://bsky.social"
    bluesky_app_password: SecretStr | None = None
    # Jetstream's zstd dictionary (``pkg/models/zstd_dictionary`` in its repository): when set,
    # the connector asks for compressed events, about half the bandwidth
    bluesky_zstd_dictionary: Path | None = None
    mastodon_api_base_url: str | None = None  # the brand's server, e.g. https://mastodon.social
    mastodon_access_token: SecretStr | None = None
    x_bearer_token: SecretStr | None = None
    x_consumer_key: SecretStr | None = None
    x_consumer_secret: SecretStr | None = None
    x_access_token: SecretStr | None = None
    x_access_token_secret: SecretStr | None = None

    # agent queue: leases, SLA targets per band (minutes, JSON in the environment), escalations
    lease_minutes: float = Field(default=10.0, gt=0, le=480)
    sla_first_response_minutes: dict[str, float] = Field(
        default_factory=lambda: {"P1": 15.0, "P2": 60.0, "P3": 240.0, "P4": 1440.0}
    )
    sla_resolution_minutes: dict[str, float] = Field(
        default_factory=lambda: {"P1": 240.0, "P2": 480.0, "P3": 1440.0, "P4": 4320.0}
    )
    sla_warn_fraction: float = Field(
        default=0.8, gt=0, lt=1, description="warn once this share of a target has passed"
    )
    affinity_days: float = Field(default=30.0, ge=0)
    escalations_per_agent_hour: int = Field(default=5, ge=0)
    escalation_credit_limit: float = Field(default=50.0, ge=0)
    goodwill_limit: float = Field(
        default=250.0, ge=0, description="a goodwill credit or refund above this needs approval"
    )
    goodwill_daily_cap: float = Field(
        default=1000.0, ge=0, description="what one agent grants a day before approval is needed"
    )
    currency: str = Field(default="EUR", pattern="^[A-Z]{3}$", description="the account currency")
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_ca_file: Path | None = Field(
        default=None, description="trust this CA for the SMTP server (a private relay)"
    )
    smtp_from: str = "support@example.com"
    twilio_base_url: str = "https://api.twilio.com"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_agent_number: str | None = None
    video_provider: str = Field(default="jitsi", pattern="^(jitsi|zoom)$")
    jitsi_base_url: str = "https://meet.jit.si"
    zoom_base_url: str = "https://api.zoom.us"
    zoom_oauth_url: str = "https://zoom.us/oauth/token"
    zoom_account_id: str | None = None
    zoom_client_id: str | None = None
    zoom_client_secret: SecretStr | None = None
    session_secret: SecretStr | None = Field(
        default=None,
        description="signs dashboard session cookies; unset means a new random key at each start",
    )
    session_https_only: bool = False
    session_max_age_s: int = Field(default=8 * 3600, ge=60)

    # the alerts notifier (``triage alerts run``): who hears of a spike, and how often
    alerts_group: str = "triage-alerts"
    alerts_email_to: list[str] = Field(
        default_factory=list, description='recipients, JSON in the environment: ["a@x", "b@x"]'
    )
    alerts_webhook_url: SecretStr | None = Field(
        default=None, description="a Slack-style incoming webhook (its URL is a credential)"
    )
    alerts_per_hour: int = Field(default=20, ge=1)
    alerts_growth: float = Field(
        default=2.0, gt=1, description="tell again when the peak reaches this many times the last"
    )
    alerts_trend_interval_minutes: float = Field(default=15.0, ge=0)
    public_url: str = Field(
        default="http://localhost:8000", description="where people open the dashboards"
    )

    # Posts a batch takes at most. 500, not 1,000: a worker's peak memory is its resident
    # models plus one batch in flight (spaCy tokens, feature matrices, records, BSON), and on
    # the bench's backlog of 20,000 posts (QUICK=1's end-to-end phase, alternating, 2026-12-05)
    # 500 peaked at 406 / 406 / 406 MB against 441 / 436 / 437 for 1,000, at 1,025 / 949 /
    # 1,374 posts/s against 984 / 926 / 1,273: one vectorizer and model call per 500 posts
    # already spreads their fixed cost.
    batch_size: int = Field(default=500, ge=1, le=100_000)
    # How long a batch waits to fill once its first post arrived. A batch being processed lets
    # the next one gather anyway; measured at 626 posts/s into 2 workers on the real Kafka and
    # FerretDB (docs/performance.md), 50 ms gave produce -> claimable p50 0.18 s and p99 0.36 s,
    # 200 ms 0.34 s and 0.61 s. Under a backlog batches fill at once either way.
    batch_wait_ms: int = Field(default=50, ge=0, le=60_000)
    write_retries: int = Field(default=5, ge=0)
    retry_backoff_s: float = Field(default=0.5, gt=0)
    pause_s: float = Field(default=5.0, ge=0)
    trends_enabled: bool = Field(
        default=True, description="count every batch for trend and spike detection"
    )

    @classmethod
    def from_environment(cls) -> Settings:
        """Environment variables, plus one file per secret under ``TRIAGE_SECRETS_DIR``
        (named like the variable, in lower case: ``triage_x_bearer_token``), as Docker and
        Kubernetes mount them."""
        secrets = os.environ.get("TRIAGE_SECRETS_DIR")
        if secrets and not Path(secrets).is_dir():
            raise ConfigError(f"TRIAGE_SECRETS_DIR {secrets} is not a directory")
        return cls(_secrets_dir=secrets) if secrets else cls()

    @property
    def embedded_db(self) -> Path:
        return self.data_dir / "triage.sqlite3"

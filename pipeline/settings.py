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
    models_dir: Path | None = Field(
        default=None, description="model registry; unset means the models shipped in the package"
    )

    topic_raw: str = "posts.raw"
    topic_triaged: str = "posts.triaged"
    topic_dlq: str = "posts.dlq"
    topic_alerts: str = "trends.alerts"
    partitions: int = Field(default=2, ge=1)
    consumer_group: str = "triage-workers"

    webhook_secret: SecretStr | None = None
    reddit_client_id: SecretStr | None = None
    reddit_client_secret: SecretStr | None = None
    reddit_username: SecretStr | None = None
    reddit_password: SecretStr | None = None
    reddit_user_agent: str = "social-triage/0.1 (customer care listening)"
    x_bearer_token: SecretStr | None = None
    x_consumer_key: SecretStr | None = None
    x_consumer_secret: SecretStr | None = None
    x_access_token: SecretStr | None = None
    x_access_token_secret: SecretStr | None = None

    batch_size: int = Field(default=1000, ge=1, le=100_000)
    batch_wait_ms: int = Field(default=200, ge=0, le=60_000)
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

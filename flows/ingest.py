"""The ingest flow: run one configured connector for a bounded time (or until it ends).

The connector is the same one `triage connect` runs; the flow adds a time bound, Prefect's logs
and state, and the run's counts (posts, rate, dead letters) as a table artifact.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from connectors.base import Connector, on_kafka
from flows.retries import RETRIES, RETRY_DELAY_S, transient_only
from flows.run_log import RUN_HOOKS
from pipeline.bus.interface import Producer
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.store.interface import Store

SOURCES = ("replay", "webhook", "x", "reddit", "bluesky", "mastodon")


def _secret(cfg: Settings, name: str) -> str:
    value = getattr(cfg, name)
    if value is None:
        raise ConfigError(
            f"set TRIAGE_{name.upper()} (or a triage_{name} file in TRIAGE_SECRETS_DIR)"
        )
    return str(value.get_secret_value())


def build_connector(
    source: str, cfg: Settings, producer: Producer, store: Store, options: dict[str, Any]
) -> Connector:
    """The connector named by ``source``, with its options as `triage connect` takes them."""
    topic, dlq = cfg.topic_raw, cfg.topic_dlq
    if source == "replay":
        from connectors.replay import ReplayConnector

        if "path" not in options:
            raise ConfigError("the replay source needs options.path, a JSONL or twcs.csv file")
        return ReplayConnector(
            producer,
            Path(options["path"]),
            speed=float(options.get("speed", 0.0)),
            limit=options.get("limit"),
            store=store,
            topic=topic,
            dlq_topic=dlq,
        )
    if source == "webhook":
        from connectors.webhook import WebhookConnector

        return WebhookConnector(
            producer,
            _secret(cfg, "webhook_secret"),
            host=options.get("host", "127.0.0.1"),
            port=int(options.get("port", 8080)),
            topic=topic,
            dlq_topic=dlq,
        )
    if source == "x":
        import tweepy

        from connectors.x import XConnector

        client = tweepy.Client(bearer_token=_secret(cfg, "x_bearer_token"))
        return XConnector(
            producer,
            client,
            options.get("query"),
            store,
            mentions_of=options.get("mentions_of"),
            poll_interval_s=float(options.get("poll_interval", 15.0)),
            topic=topic,
            dlq_topic=dlq,
        )
    if source == "reddit":
        import praw

        from connectors.reddit import RedditConnector

        client = praw.Reddit(
            client_id=_secret(cfg, "reddit_client_id"),
            client_secret=_secret(cfg, "reddit_client_secret"),
            user_agent=cfg.reddit_user_agent,
        )
        return RedditConnector(
            producer,
            client,
            list(options.get("subreddits", [])),
            store,
            keywords=options.get("keywords", ()),
            topic=topic,
            dlq_topic=dlq,
        )
    if source == "bluesky":
        from connectors.bluesky import BlueskyConnector

        return BlueskyConnector(
            producer,
            store,
            instance=options.get("instance", cfg.bluesky_jetstream_url),
            keywords=options.get("keywords", ()),
            handles=options.get("handles", ()),
            dids=options.get("dids", ()),
            topic=topic,
            dlq_topic=dlq,
        )
    if source == "mastodon":
        from mastodon import Mastodon

        from connectors.mastodon import MastodonConnector

        base = options.get("api_base_url", cfg.mastodon_api_base_url)
        if not base:
            raise ConfigError("the mastodon source needs TRIAGE_MASTODON_API_BASE_URL")
        token = cfg.mastodon_access_token
        client = Mastodon(
            api_base_url=base, access_token=token.get_secret_value() if token else None
        )
        return MastodonConnector(
            producer,
            client,
            store,
            hashtags=options.get("hashtags", ()),
            public=options.get("public"),
            mentions=bool(options.get("mentions", token is not None)),
            topic=topic,
            dlq_topic=dlq,
        )
    raise ConfigError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")


def run_bounded(connector: Connector, seconds: float | None) -> float:
    """Run the connector on a thread; stop it after ``seconds``. Returns the seconds it ran and
    re-raises whatever made it fail."""
    failure: list[BaseException] = []

    def guarded() -> None:
        try:
            connector.start()
        except BaseException as exc:  # re-raised below, in the flow
            failure.append(exc)

    started = time.monotonic()
    feeding = threading.Thread(target=guarded, name=f"ingest-{connector.name}", daemon=True)
    feeding.start()
    feeding.join(seconds)
    if feeding.is_alive():
        connector.stop()
        feeding.join()
    if failure:
        raise failure[0]
    return time.monotonic() - started


@task(retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=transient_only)
def run_connector(source: str, options: dict[str, Any], seconds: float | None) -> dict[str, Any]:
    """Open the store and a producer, run the connector, close both whatever happens."""
    cfg = Settings.from_environment()
    with on_kafka(
        cfg, lambda producer, store: build_connector(source, cfg, producer, store, options)
    ) as connector:
        ran = run_bounded(connector, seconds)
    return {
        "source": source,
        "posts": connector.sent,
        "dead_letters": connector.rejected,
        "seconds": round(ran, 2),
        "posts_per_s": round(connector.sent / max(ran, 1e-9), 1),
    }


@flow(name="ingest", **RUN_HOOKS)
def ingest(
    source: str = "replay",
    options: dict[str, Any] | None = None,
    seconds: float | None = 600.0,
) -> dict[str, Any]:
    """Run a connector onto posts.raw for at most ``seconds`` (None: until it ends), and record
    the run's counts as a table artifact."""
    log = get_run_logger()
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    log.info("ingest: %s for at most %s s", source, seconds)
    counts = run_connector(source, dict(options or {}), seconds)
    create_table_artifact(
        key="ingest-counts",
        table=[counts],
        description=f"ingest from {source}: posts sent, dead letters and rate for this run",
    )
    log.info("ingest: %(posts)s posts, %(dead_letters)s dead letters, %(posts_per_s)s/s", counts)
    return counts

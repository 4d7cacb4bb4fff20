"""The replay flow: after a fix, put posts back on posts.raw so the workers process them again.

Two sources: the dead-letter topic (each letter carries the original bytes, base64-encoded), or a
time range of posts.raw itself (a backfill after the store lost writes). Kafka finds the offsets
for the range (``offsets_for_times``). Only records that now parse as a ``Post`` are re-sent,
keyed by post id; the rest stay where they are and are counted. Replaying is idempotent: the
store keeps one copy per post id whatever arrives twice, and dead-letter replays resume from a
per-partition checkpoint, so a second run re-sends nothing the first run sent.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from pydantic import ValidationError

from flows.retries import RETRIES, RETRY_DELAY_S, transient_only
from flows.run_log import RUN_HOOKS
from pipeline.bus.interface import Message
from pipeline.bus.kafka import KafkaBus
from pipeline.bus.offsets import Offsets
from pipeline.errors import ConfigError
from pipeline.records import DeadLetter, Post
from pipeline.settings import Settings
from pipeline.store import open_store

SOURCES = ("dlq", "raw")


def original_bytes(message: Message, source: str) -> bytes | None:
    """The post's bytes as a connector first sent them; None if a letter is unreadable."""
    if source == "raw" or message.value is None:
        return message.value
    try:
        letter = DeadLetter.model_validate_json(message.value)
        return base64.b64decode(letter.original, validate=True)
    except (ValidationError, binascii.Error):
        return None


@task(retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=transient_only)
def replay_range(
    source: str, since: datetime | None, until: datetime | None, resume: bool
) -> list[dict[str, Any]]:
    cfg = Settings.from_environment()
    if not cfg.kafka_bootstrap:
        raise ConfigError("set TRIAGE_KAFKA_BOOTSTRAP: replays read and write Kafka")
    topic = cfg.topic_dlq if source == "dlq" else cfg.topic_raw
    store = open_store(cfg)
    store.ensure_schema()
    bus = KafkaBus(cfg.kafka_bootstrap, partitions=cfg.partitions)
    bus.ensure_topics([cfg.topic_raw, cfg.topic_dlq])
    producer = bus.producer()
    rows = []
    try:
        with Offsets(cfg.kafka_bootstrap) as offsets:
            ends = offsets.ends(topic)
            # a partition with nothing at or after ``since`` has nothing to replay: start at its end
            start = offsets.at_time(topic, since, ends if since else offsets.beginnings(topic))
            stop = offsets.at_time(topic, until, ends)
            if source == "dlq" and resume:
                for p in start:
                    done = store.get_checkpoint(f"replay:{topic}:{p}")
                    start[p] = max(start[p], int(done)) if done else start[p]
            counts = {p: {"resent": 0, "still_failing": 0} for p in start}
            for batch in offsets.read(topic, start, stop):
                for m in batch:
                    original = original_bytes(m, source)
                    try:
                        post = Post.model_validate_json(original or b"")
                    except ValidationError:
                        counts[m.partition]["still_failing"] += 1
                        continue
                    producer.send(cfg.topic_raw, original or b"", key=post.id.encode())
                    counts[m.partition]["resent"] += 1
                producer.flush()
            producer.flush()
            for p in sorted(start):
                if source == "dlq" and stop[p] > start[p]:
                    # only after the flush: a crash before it re-sends, never skips
                    store.set_checkpoint(f"replay:{topic}:{p}", str(stop[p]))
                rows.append({"topic": topic, "partition": p, "from": start[p], "to": stop[p],
                             **counts[p]})
    finally:
        producer.close()
        store.close()
    return rows


@flow(name="replay", **RUN_HOOKS)
def replay(
    source: str = "dlq",
    since: datetime | None = None,
    until: datetime | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Re-send dead letters (``source="dlq"``) or a time range of posts.raw (``"raw"``) onto
    posts.raw for the workers; ``resume=False`` replays dead letters already replayed."""
    log = get_run_logger()
    if source not in SOURCES:
        raise ConfigError(f"unknown replay source {source!r}; use dlq or raw")
    if since is not None and until is not None and since >= until:
        raise ConfigError(f"since ({since}) must be before until ({until})")
    if source == "raw" and since is None:
        raise ConfigError("a replay of posts.raw needs since, the start of the range to reprocess")
    rows = replay_range(source, since, until, resume)
    create_table_artifact(
        key="replay-counts",
        table=rows,
        description=f"replay of {source}: offsets read and posts re-sent per partition",
    )
    totals = {
        "resent": sum(r["resent"] for r in rows),
        "still_failing": sum(r["still_failing"] for r in rows),
    }
    log.info(
        "replay %s: %s re-sent, %s still failing", source, totals["resent"], totals["still_failing"]
    )
    return {**totals, "partitions": rows}

"""The one base every connector subclasses: ``setup``, ``run``, ``stop``.

A subclass only knows its source. It calls ``emit`` with each ``Post`` it parsed and ``reject``
with what it could not parse; the base sends both to the bus (posts keyed by their stable id, so
a post always lands on the same partition) and counts them.
"""

from __future__ import annotations

import base64
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import ValidationError

from pipeline.bus import open_bus
from pipeline.bus.interface import Producer
from pipeline.bus.kafka_records import dead_letter_record
from pipeline.errors import ConfigError
from pipeline.records import DeadLetter, Post, utcnow, validation_reason
from pipeline.settings import Settings
from pipeline.store import open_store
from pipeline.store.interface import Store

# what a payload not shaped as documented raises on the way to a Post
MALFORMED: tuple[type[Exception], ...] = (KeyError, TypeError, ValueError, AttributeError)


class Connector(ABC):
    name = "connector"

    def __init__(
        self, producer: Producer, topic: str = "posts.raw", dlq_topic: str = "posts.dlq"
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.sent = 0
        self.rejected = 0
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        return not self._stop.is_set()

    def setup(self) -> None:
        """Open the source and load checkpoints; the default needs neither."""

    @abstractmethod
    def run(self) -> None:
        """Read the source while ``self.running``, calling ``emit`` and ``reject``."""

    def stop(self) -> None:
        self._stop.set()

    def wait(self, seconds: float) -> bool:
        """Sleep that a stop interrupts; True if stopped."""
        return self._stop.wait(seconds)

    def checkpoint(self) -> None:
        """Persist how far the source was read, after a flush; the default keeps none."""

    def emit(self, post: Post) -> None:
        self.producer.send(self.topic, post.model_dump_json().encode(), key=post.id.encode())
        self.sent += 1

    def reject(self, original: bytes, reason: str, where: str = "") -> None:
        letter = DeadLetter(
            reason=reason[:2000],
            stage=f"connector:{self.name}",
            original=base64.b64encode(original).decode(),
            topic=where or self.name,
            failed_at=utcnow(),
        )
        value, key, headers = dead_letter_record(letter)
        self.producer.send(self.dlq_topic, value, key=key, headers=headers)
        self.rejected += 1

    def to_post(
        self,
        build: Callable[[], Post | None],
        original: Callable[[], bytes],
        what: str,
        where: str,
        also: tuple[type[Exception], ...] = (),
    ) -> Post | None:
        """The ``Post`` that ``build`` makes of a provider's payload (None: nothing to send),
        or None once the payload (``original``, made only then) is a dead letter saying why: a
        post the records refuse, or a payload not shaped as the provider documents (``also``:
        the source's own kinds of that)."""
        try:
            return build()
        except ValidationError as exc:
            reason = validation_reason(exc)
        except MALFORMED + also as exc:
            reason = f"malformed {what}: {type(exc).__name__} {exc}"
        self.reject(original(), reason, where=where)
        return None

    def flush(self) -> None:
        self.producer.flush()
        self.checkpoint()

    def start(self) -> None:
        """Run to completion or until stopped, then flush and checkpoint, whatever happened."""
        self.setup()
        try:
            self.run()
        finally:
            self.flush()


@contextmanager
def on_kafka(cfg: Settings, build: Callable[[Producer, Store], Connector]) -> Iterator[Connector]:
    """A connector with what every runner (the CLI, the ingest flow) opens for it: the store
    for its checkpoints and a Kafka producer, both closed whatever happens."""
    if not cfg.kafka_bootstrap:
        raise ConfigError(
            "set TRIAGE_KAFKA_BOOTSTRAP: connectors write to Kafka (the in-process bus only "
            "lives inside `triage demo`)"
        )
    store = open_store(cfg)
    store.ensure_schema()
    bus = open_bus(cfg)
    bus.ensure_topics([cfg.topic_raw, cfg.topic_dlq])
    producer = bus.producer()
    try:
        try:
            connector = build(producer, store)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        yield connector
    finally:
        producer.close()
        store.close()

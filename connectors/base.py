"""The one base every connector subclasses: ``setup``, ``run``, ``stop``.

A subclass only knows its source. It calls ``emit`` with each ``Post`` it parsed and ``reject``
with what it could not parse; the base sends both to the bus (posts keyed by their stable id, so
a post always lands on the same partition) and counts them.
"""

from __future__ import annotations

import base64
import threading
from abc import ABC, abstractmethod

from pipeline.bus import Producer
from pipeline.records import DeadLetter, Post, utcnow


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
        self.producer.send(self.dlq_topic, letter.model_dump_json().encode())
        self.rejected += 1

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

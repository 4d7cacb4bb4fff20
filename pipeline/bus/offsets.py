"""Kafka offsets for operators' flows: lag per partition, offsets at a time, reading a range.

These read positions without joining a consumer group, so a health check or a replay never
takes partitions away from the workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from pipeline.bus.interface import Message
from pipeline.bus.kafka import BOOTSTRAP_TIMEOUT_MS, MAX_MESSAGE_BYTES, _message, _unreachable
from pipeline.errors import TransientError


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


class Offsets:
    """A non-group consumer for looking at topics: ends, beginnings, commits, time lookups."""

    def __init__(self, bootstrap: str, group: str | None = None) -> None:
        self.bootstrap = bootstrap
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id=group,
                enable_auto_commit=False,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                request_timeout_ms=10_000,
                fetch_max_bytes=MAX_MESSAGE_BYTES * 2,
            )
        except (KafkaError, OSError, ValueError) as exc:
            raise _unreachable(bootstrap, exc) from exc

    def __enter__(self) -> Offsets:
        return self

    def __exit__(self, *exc: object) -> None:
        self._consumer.close(autocommit=False)

    def partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions; an empty list if it does not exist (yet)."""
        try:
            found = self._consumer.partitions_for_topic(topic) or set()
        except KafkaError as exc:
            raise _unreachable(self.bootstrap, exc) from exc
        return [TopicPartition(topic, p) for p in sorted(found)]

    def ends(self, topic: str) -> dict[int, int]:
        tps = self.partitions(topic)
        return {tp.partition: o for tp, o in self._consumer.end_offsets(tps).items()} if tps else {}

    def beginnings(self, topic: str) -> dict[int, int]:
        tps = self.partitions(topic)
        if not tps:
            return {}
        return {tp.partition: o for tp, o in self._consumer.beginning_offsets(tps).items()}

    def lag(self, topic: str) -> list[PartitionLag]:
        """Per partition: how far the group's committed offset trails the end (everything, if
        the group never committed there)."""
        ends, starts = self.ends(topic), self.beginnings(topic)
        out = []
        for p, end in sorted(ends.items()):
            try:
                committed = self._consumer.committed(TopicPartition(topic, p))
            except KafkaError as exc:
                raise _unreachable(self.bootstrap, exc) from exc
            done = committed if committed is not None else starts.get(p, 0)
            out.append(PartitionLag(topic, p, committed, end, max(end - done, 0)))
        return out

    def at_time(self, topic: str, when: datetime | None, default: dict[int, int]) -> dict[int, int]:
        """Per partition, the first offset at or after ``when``; ``default`` where none is."""
        if when is None:
            return dict(default)
        stamp = int(when.timestamp() * 1000)
        found = self._consumer.offsets_for_times({tp: stamp for tp in self.partitions(topic)})
        return {
            tp.partition: (o.offset if o is not None else default[tp.partition])
            for tp, o in found.items()
        }

    def read(
        self, topic: str, start: dict[int, int], stop: dict[int, int], timeout_s: float = 60.0
    ) -> Iterator[list[Message]]:
        """Batches of the messages in ``[start, stop)`` per partition."""
        wanted = {p: (s, stop[p]) for p, s in start.items() if s < stop[p]}
        if not wanted:
            return
        tps = [TopicPartition(topic, p) for p in sorted(wanted)]
        self._consumer.assign(tps)
        for tp in tps:
            self._consumer.seek(tp, wanted[tp.partition][0])
        open_ = set(wanted)
        deadline = time.monotonic() + timeout_s
        while open_:
            if time.monotonic() > deadline:
                raise TransientError(f"reading {topic} took longer than {timeout_s}s")
            batch: list[Message] = []
            for records in self._consumer.poll(timeout_ms=500, max_records=1000).values():
                for r in records:
                    if r.partition in open_ and r.offset < wanted[r.partition][1]:
                        batch.append(_message(r))
            for p in list(open_):
                if self._consumer.position(TopicPartition(topic, p)) >= wanted[p][1]:
                    open_.discard(p)
                    self._consumer.pause(TopicPartition(topic, p))
            if batch:
                yield batch

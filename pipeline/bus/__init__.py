"""The message bus: Apache Kafka in production, an in-process bus for the embedded default.

Both implement the same small interface, and one contract suite (tests/test_bus_contract.py) runs
against both. The worker only ever sees this interface.
"""

from __future__ import annotations

import itertools
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pipeline.errors import TransientError

if TYPE_CHECKING:
    from pipeline.settings import Settings


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


class Producer(Protocol):
    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None: ...

    def flush(self) -> None:
        """Block until every send so far is acknowledged; raise TransientError if any failed."""

    def close(self) -> None: ...


class Consumer(Protocol):
    def poll(self, max_records: int, timeout_s: float) -> list[Message]: ...

    def commit(self, messages: Sequence[Message]) -> None:
        """Mark everything up to and including these messages as done, per partition."""

    def rewind(self, messages: Sequence[Message]) -> None:
        """Go back to the first of these messages, so that they are delivered again."""

    def close(self) -> None: ...


class Bus(Protocol):
    def ensure_topics(self, names: Iterable[str]) -> None: ...

    def producer(self) -> Producer: ...

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer: ...

    def lag(self, group: str, topic: str) -> dict[int, int]:
        """Messages per partition that ``group`` has not committed yet: what the operator
        dashboard shows as consumer lag."""

    def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Message]:
        """Every message now on a topic, for operators' tools and tests (not the hot path)."""

    def close(self) -> None: ...


def next_offsets(messages: Iterable[Message]) -> dict[tuple[str, int], int]:
    """The offset to commit per partition: one past the last message seen there."""
    offsets: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic, m.partition)
        offsets[key] = max(offsets.get(key, 0), m.offset + 1)
    return offsets


def first_offsets(messages: Iterable[Message]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic, m.partition)
        offsets[key] = min(offsets.get(key, m.offset), m.offset)
    return offsets


def partition_for(key: bytes | None, partitions: int, counter: itertools.count) -> int:
    if key is None:
        return next(counter) % partitions
    return zlib.crc32(key) % partitions


# ---------------------------------------------------------------- in-process implementation


@dataclass
class _Group:
    members: list[InProcessConsumer] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)


class InProcessBus:
    """Partitioned, offset-tracking topics in memory, with consumer groups that share partitions.

    It behaves like Kafka where the worker can tell: per-partition order, committed offsets per
    group, redelivery of what was not committed, and partitions split among a group's members.
    """

    def __init__(self, partitions: int = 2) -> None:
        self.partitions = partitions
        self._cond = threading.Condition()
        self._topics: dict[str, list[list[Message]]] = {}
        self._groups: dict[str, _Group] = {}
        self._rr = itertools.count()

    def ensure_topics(self, names: Iterable[str]) -> None:
        with self._cond:
            for name in names:
                self._topics.setdefault(name, [[] for _ in range(self.partitions)])

    def producer(self) -> InProcessProducer:
        return InProcessProducer(self)

    def consumer(self, group: str, topics: Sequence[str]) -> InProcessConsumer:
        self.ensure_topics(topics)
        consumer = InProcessConsumer(self, group, tuple(topics))
        with self._cond:
            self._groups.setdefault(group, _Group()).members.append(consumer)
            self._rebalance(group)
        return consumer

    def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Message]:
        with self._cond:
            return [m for part in self._topics.get(topic, []) for m in part]

    def lag(self, group: str, topic: str) -> dict[int, int]:
        with self._cond:
            committed = self._groups[group].committed if group in self._groups else {}
            parts = self._topics.get(topic, [])
            return {p: len(part) - committed.get((topic, p), 0) for p, part in enumerate(parts)}

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- used by the producer and consumers, always under the lock
    def _append(self, topic: str, value: bytes, key: bytes | None) -> None:
        with self._cond:
            parts = self._topics.setdefault(topic, [[] for _ in range(self.partitions)])
            p = partition_for(key, len(parts), self._rr)
            parts[p].append(Message(topic, p, len(parts[p]), key, value, int(time.time() * 1000)))
            self._cond.notify_all()

    def _rebalance(self, group: str) -> None:
        g = self._groups[group]
        for i, member in enumerate(g.members):
            member._assignment = {
                (t, p)
                for t in member.topics
                for p in range(len(self._topics[t]))
                if p % len(g.members) == i
            }
            member._positions = {tp: g.committed.get(tp, 0) for tp in member._assignment}

    def _leave(self, consumer: InProcessConsumer) -> None:
        with self._cond:
            g = self._groups[consumer.group]
            if consumer in g.members:
                g.members.remove(consumer)
                self._rebalance(consumer.group)


class InProcessProducer:
    def __init__(self, bus: InProcessBus) -> None:
        self._bus = bus

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self._bus._append(topic, value, key)

    def flush(self) -> None:
        """Sends are synchronous in memory: nothing is ever outstanding."""

    def close(self) -> None:
        """Nothing to release."""


class InProcessConsumer:
    def __init__(self, bus: InProcessBus, group: str, topics: tuple[str, ...]) -> None:
        self._bus = bus
        self.group = group
        self.topics = topics
        self._assignment: set[tuple[str, int]] = set()
        self._positions: dict[tuple[str, int], int] = {}
        self._closed = False

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        deadline = time.monotonic() + timeout_s
        with self._bus._cond:
            while True:
                if self._closed:
                    raise TransientError("consumer is closed")
                out: list[Message] = []
                for tp in sorted(self._assignment):
                    log = self._bus._topics[tp[0]][tp[1]]
                    pos = self._positions[tp]
                    take = log[pos : pos + max_records - len(out)]
                    out.extend(take)
                    self._positions[tp] = pos + len(take)
                    if len(out) >= max_records:
                        break
                left = deadline - time.monotonic()
                if out or left <= 0:
                    return out
                self._bus._cond.wait(left)

    def commit(self, messages: Sequence[Message]) -> None:
        with self._bus._cond:
            group = self._bus._groups[self.group]
            for tp, offset in next_offsets(messages).items():
                if tp not in self._assignment:
                    raise TransientError(f"partition {tp} was reassigned before commit")
                group.committed[tp] = max(group.committed.get(tp, 0), offset)

    def rewind(self, messages: Sequence[Message]) -> None:
        with self._bus._cond:
            for tp, offset in first_offsets(messages).items():
                if tp in self._assignment:
                    self._positions[tp] = min(self._positions[tp], offset)

    def close(self) -> None:
        self._closed = True
        self._bus._leave(self)


def open_bus(settings: Settings) -> Bus:
    if settings.kafka_bootstrap:
        from pipeline.bus.kafka import KafkaBus

        return KafkaBus(
            settings.kafka_bootstrap,
            partitions=settings.partitions,
            stall_s=settings.kafka_stall_s,
        )
    return InProcessBus(partitions=settings.partitions)

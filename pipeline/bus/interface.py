"""The bus interface the worker, connectors and flows see: a message, a producer, a consumer.

Two implementations: Apache Kafka (``pipeline.bus.kafka``) in production and an in-process bus
(``pipeline.bus.memory``) for the embedded default. One contract suite
(tests/test_bus_contract.py) runs against both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# Kafka record headers: (name, value) pairs, names repeatable, in the order they were sent.
Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    # None is a tombstone: Kafka allows it, and outsiders' tools send it
    value: bytes | None
    timestamp_ms: int
    headers: Headers = ()


class Producer(Protocol):
    # True: what is sent becomes visible only with commit_transaction (Kafka transactions)
    transactional: bool

    def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Headers = ()
    ) -> None: ...

    def flush(self) -> None:
        """Block until every send so far is acknowledged; raise TransientError if any failed."""

    def commit_transaction(self, consumer: Consumer, messages: Sequence[Message]) -> None:
        """Make what was sent since the last call visible together with ``consumer``'s offsets
        for ``messages``, all or nothing; raise TransientError after undoing it."""

    def abort(self) -> None:
        """Undo what was sent since the last commit_transaction where the bus can (a
        transaction); a producer without transactions has nothing to undo."""

    def close(self) -> None: ...


class Consumer(Protocol):
    def poll(self, max_records: int, timeout_s: float) -> list[Message]: ...

    def commit(self, messages: Sequence[Message]) -> None:
        """Mark everything up to and including these messages as done, per partition."""

    def rewind(self, messages: Sequence[Message]) -> None:
        """Go back to the first of these messages, so that they are delivered again."""

    def behind(self) -> int | None:
        """Records waiting in this member's partitions as its last fetch saw them (no request
        to the broker): the lag a worker reports with each batch; None if not known yet."""

    def assignment(self) -> frozenset[tuple[str, int]] | None:
        """The (topic, partition)s the group gave this member when it last settled, possibly
        none (more members than partitions); None while the member is joining or the group is
        rebalancing. No request to the broker: a worker with an idle exit asks after every empty
        poll, and its idle clock runs only while this is known."""

    def close(self) -> None: ...


class Bus(Protocol):
    def ensure_topics(self, names: Iterable[str]) -> None: ...

    def producer(self, transactional_id: str | None = None) -> Producer:
        """``transactional_id``: one that publishes in transactions, where the bus has them."""

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
